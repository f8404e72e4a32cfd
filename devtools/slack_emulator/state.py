"""What the emulated workspace holds: people, channel messages, ephemeral messages, open modals,
every Web API call (for tests), and the interactions it delivered to the app."""

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse

from . import DEFAULT_CHANNEL, DEFAULT_TEAM

DEFAULT_USERS = [
    {"id": "U0MANAGER1", "name": "fran", "real_name": "Fran Finance"},
    {"id": "U0MANAGER2", "name": "max", "real_name": "Max Manager"},
    {"id": "U0DIRECTOR", "name": "ada", "real_name": "Ada Admin"},
    {"id": "U0AGENT001", "name": "alex", "real_name": "Alex Agent"},
    {"id": "U0STRANGER", "name": "stranger", "real_name": "Sam Stranger"},
]


class Workspace:
    def __init__(self, *, token, signing_secret, interactions_url="", users=None):
        self.token = token
        self.signing_secret = signing_secret
        self.interactions_url = interactions_url
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self.reset(users)

    def reset(self, users=None):
        self.users = {u["id"]: dict(u) for u in (users or DEFAULT_USERS)}
        self.messages: dict[str, dict] = {}  # ts -> message, in posting order
        self.ephemerals: list[dict] = []
        self.views: dict[str, dict] = {}  # view id -> open modal
        self.triggers: dict[str, str] = {}  # trigger id -> user id it was issued to
        self.calls: list[dict] = []
        self.deliveries: list[dict] = []  # interaction requests sent to the app
        self.faults: dict = {}  # {"status": 503, "count": n or None, "error": "..."}
        self.notices: dict[str, str] = {}  # user id -> last answer shown on the page

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def next_ts(self) -> str:
        return f"{time.time():.0f}.{next(self._ids):06d}"

    def take_fault(self):
        """The fault to answer this API call with, if one is armed (counts it down)."""
        if not self.faults:
            return None
        fault = dict(self.faults)
        if fault.get("count") is not None:
            self.faults["count"] -= 1
            if self.faults["count"] <= 0:
                self.faults = {}
        return fault

    def user_payload(self, user_id: str) -> dict:
        user = self.users.get(user_id) or {"id": user_id, "name": user_id}
        return {"id": user["id"], "username": user.get("name", ""), "name": user.get("name", ""), "team_id": DEFAULT_TEAM}

    def sign(self, body: str, timestamp: int | None = None) -> dict:
        timestamp = int(time.time()) if timestamp is None else timestamp
        base = f"v0:{timestamp}:{body}".encode()
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}",
                "Content-Type": "application/x-www-form-urlencoded"}

    def block_actions(self, *, user_id: str, ts: str, action_id: str) -> dict:
        message = self.messages[ts]
        action = _find_action(message.get("blocks") or [], action_id)
        if action is None:
            raise KeyError(action_id)
        trigger = self.next_id("TRIG")
        self.triggers[trigger] = user_id
        return {
            "type": "block_actions",
            "user": self.user_payload(user_id),
            "team": {"id": DEFAULT_TEAM, "domain": "emulator"},
            "api_app_id": "A0REFUNDS",
            "trigger_id": trigger,
            "container": {"type": "message", "message_ts": ts, "channel_id": message["channel"]},
            "channel": {"id": message["channel"], "name": "approvals"},
            "message": {"ts": ts, "text": message.get("text", ""), "blocks": message.get("blocks", [])},
            "actions": [{
                "type": "button", "action_id": action_id, "block_id": action.get("block_id", ""),
                "value": action.get("value", ""), "action_ts": f"{time.time():.6f}",
            }],
        }

    def view_submission(self, *, user_id: str, view_id: str, values: dict) -> dict:
        view = self.views[view_id]
        state = {}
        for block in view["view"].get("blocks", []):
            element = block.get("element") or {}
            if block.get("type") == "input" and element.get("action_id"):
                value = values.get(block.get("block_id", ""), "")
                state.setdefault(block.get("block_id", ""), {})[element["action_id"]] = {
                    "type": element.get("type", "plain_text_input"), "value": value or None}
        return {
            "type": "view_submission",
            "user": self.user_payload(user_id),
            "team": {"id": DEFAULT_TEAM, "domain": "emulator"},
            "api_app_id": "A0REFUNDS",
            "view": {**view["view"], "id": view_id, "state": {"values": state}},
        }

    @staticmethod
    def form_body(payload: dict) -> str:
        return urllib.parse.urlencode({"payload": json.dumps(payload)})


def _find_action(blocks, action_id):
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id", "")}
    return None
