"""Start the Slack emulator as its own process and drive it over HTTP (pytest fixture, tests)."""

import contextlib
import sys

import requests

from devtools.process import serve

from . import DEFAULT_CHANNEL, DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN

READY_PREFIX = b"slack-emulator listening on "


class EmulatorError(RuntimeError):
    pass


class Emulator:
    """A running emulator: .api_url for slack_sdk, state, clicks and modal submissions."""

    def __init__(self, base_url, token=DEFAULT_TOKEN, signing_secret=DEFAULT_SIGNING_SECRET, pid=None):
        self.base_url = base_url.rstrip("/")
        self.api_url = self.base_url + "/api/"
        self.token = token
        self.signing_secret = signing_secret
        self.channel = DEFAULT_CHANNEL
        self.pid = pid
        self._http = requests.Session()

    def _call(self, method, path, payload=None):
        response = self._http.request(method, f"{self.base_url}/_emulator/{path}", json=payload, timeout=30)
        if response.status_code >= 400:
            raise EmulatorError(f"{method} /_emulator/{path}: {response.status_code} {response.text}")
        return response.json()

    def state(self) -> dict:
        return self._call("GET", "state")

    def messages(self) -> list[dict]:
        return self.state()["messages"]

    def ephemerals(self, user: str | None = None) -> list[dict]:
        return [e for e in self.state()["ephemerals"] if user is None or e["user"] == user]

    def views(self) -> list[dict]:
        return self.state()["views"]

    def calls(self, method: str | None = None) -> list[dict]:
        return [c for c in self.state()["calls"] if method is None or c["method"] == method]

    def reset(self, users: list | None = None) -> None:
        self._call("POST", "reset", {"users": users})

    def configure(self, **fields) -> dict:
        """interactions_url, signing_secret, token, faults ({"status", "count", "error", "delay_seconds"})."""
        return self._call("POST", "config", fields)

    def click(self, *, user: str, ts: str, action_id: str) -> dict:
        """A person clicks a button; the app's answer as {status, body, json}."""
        return self._call("POST", "click", {"user": user, "ts": ts, "action_id": action_id})

    def submit(self, *, user: str, view_id: str, values: dict) -> dict:
        return self._call("POST", "submit", {"user": user, "view_id": view_id, "values": values})

    def replay(self, index: int = -1) -> dict:
        return self._call("POST", "replay", {"index": index})


@contextlib.contextmanager
def launch(*args: str, log_path=None, interactions_url: str = "", startup_timeout: float = 20.0):
    command = [sys.executable, "-m", "devtools.slack_emulator", "--host", "127.0.0.1", "--port", "0",
               "--token", DEFAULT_TOKEN, "--signing-secret", DEFAULT_SIGNING_SECRET, *args]
    if interactions_url:
        command += ["--interactions-url", interactions_url]
    with serve(command, ready_prefix=READY_PREFIX, error=EmulatorError, name="slack emulator",
               log_path=log_path, startup_timeout=startup_timeout) as (base_url, pid):
        yield Emulator(base_url, pid=pid)
