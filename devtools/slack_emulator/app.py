"""The emulator's HTTP side: Slack's Web API (as slack_sdk calls it), the page, and /_emulator/
control calls for tests (state, reset, config, faults, click, submit, replay)."""

import json
import logging
import time

import aiohttp
from aiohttp import web

from . import DEFAULT_CHANNEL
from .page import render_page
from .state import Workspace

logger = logging.getLogger("slack_emulator")
WORKSPACE = web.AppKey("workspace", Workspace)


async def _params(request: web.Request) -> dict:
    """Slack takes arguments as a query, a form or JSON; slack_sdk uses all three."""
    params = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update(dict(await request.post()))
    for key in ("blocks", "view"):  # form-encoded calls send these as JSON text
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                return {"__invalid__": key}
    return params


def _ok(**fields):
    return web.json_response({"ok": True, **fields})


def _error(error: str, status: int = 200):
    return web.json_response({"ok": False, "error": error}, status=status)


async def api_method(request: web.Request):
    ws = request.app[WORKSPACE]
    method = request.match_info["method"]
    params = await _params(request)
    auth = request.headers.get("Authorization", "")
    token = auth.removeprefix("Bearer ").strip() or params.get("token", "")
    with ws.lock:
        ws.calls.append({"method": method, "params": params, "at": time.time()})
        fault = ws.take_fault()
    if fault:
        if fault.get("delay_seconds"):
            await _sleep(fault["delay_seconds"])
        if fault.get("status"):
            return _error(fault.get("error") or "service_unavailable", status=fault["status"])
    if token != ws.token:
        return _error("invalid_auth")
    if "__invalid__" in params:
        return _error(f"invalid_{params['__invalid__']}")
    handler = API_METHODS.get(method)
    if handler is None:
        return _error("unknown_method", status=404)
    with ws.lock:
        return handler(ws, params)


async def _sleep(seconds):
    import asyncio  # noqa: PLC0415 - only fault delays need it

    await asyncio.sleep(float(seconds))


def chat_post_message(ws: Workspace, params: dict):
    channel = params.get("channel") or ""
    if not channel:
        return _error("channel_not_found")
    if not params.get("text") and not params.get("blocks"):
        return _error("no_text")
    ts = ws.next_ts()
    message = {"channel": channel, "ts": ts, "text": params.get("text", ""), "blocks": params.get("blocks") or [],
               "updates": 0, "posted_at": time.time()}
    ws.messages[ts] = message
    return _ok(channel=channel, ts=ts, message={"ts": ts, "text": message["text"], "blocks": message["blocks"]})


def chat_update(ws: Workspace, params: dict):
    message = ws.messages.get(params.get("ts") or "")
    if message is None or message["channel"] != params.get("channel"):
        return _error("message_not_found")
    message.update(text=params.get("text", message["text"]), blocks=params.get("blocks") or [],
                   updates=message["updates"] + 1)
    return _ok(channel=message["channel"], ts=message["ts"], text=message["text"])


def chat_post_ephemeral(ws: Workspace, params: dict):
    if not params.get("channel"):
        return _error("channel_not_found")
    if params.get("user") not in ws.users:
        return _error("user_not_in_channel")
    ts = ws.next_ts()
    ws.ephemerals.append({"channel": params["channel"], "user": params["user"], "ts": ts,
                          "text": params.get("text", ""), "blocks": params.get("blocks") or []})
    return _ok(message_ts=ts)


def views_open(ws: Workspace, params: dict):
    user_id = ws.triggers.pop(params.get("trigger_id") or "", None)
    if user_id is None:
        return _error("invalid_trigger_id")  # each trigger opens one view, as at Slack
    view = params.get("view") or {}
    if view.get("type") != "modal":
        return _error("invalid_arguments")
    view_id = ws.next_id("V")
    ws.views[view_id] = {"id": view_id, "user": user_id, "view": view, "errors": {}}
    return _ok(view={**view, "id": view_id})


def users_info(ws: Workspace, params: dict):
    user = ws.users.get(params.get("user") or "")
    if user is None:
        return _error("user_not_found")
    return _ok(user={**user, "team_id": "T0EMULATOR", "profile": {"real_name": user.get("real_name", "")}})


API_METHODS = {
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.postEphemeral": chat_post_ephemeral,
    "views.open": views_open,
    "users.info": users_info,
}


async def deliver(ws: Workspace, payload: dict, *, body: str | None = None, headers: dict | None = None) -> dict:
    """Post a signed interaction payload to the app; the app's answer as {status, body, json}."""
    if not ws.interactions_url:
        return {"status": 0, "body": "no interactions URL configured", "json": None}
    body = body if body is not None else ws.form_body(payload)
    headers = headers or ws.sign(body)
    with ws.lock:
        ws.deliveries.append({"body": body, "headers": headers, "payload": payload})
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            async with session.post(ws.interactions_url, data=body.encode(), headers=headers) as response:
                text = await response.text()
                status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        return {"status": 0, "body": f"could not reach the app: {error}", "json": None}
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return {"status": status, "body": text, "json": parsed}


async def click(request: web.Request):
    ws = request.app[WORKSPACE]
    data = await _control_body(request)
    try:
        with ws.lock:
            payload = ws.block_actions(user_id=data["user"], ts=data["ts"], action_id=data["action_id"])
    except KeyError as missing:
        return web.json_response({"error": f"unknown {missing}"}, status=404)
    answer = await deliver(ws, payload)
    return await _answer(request, ws, data["user"], answer)


async def submit(request: web.Request):
    ws = request.app[WORKSPACE]
    data = await _control_body(request)
    view_id = data.get("view_id", "")
    values = data.get("values") or {k.removeprefix("value:"): v for k, v in data.items() if k.startswith("value:")}
    with ws.lock:
        if view_id not in ws.views:
            return web.json_response({"error": "unknown view"}, status=404)
        payload = ws.view_submission(user_id=data["user"], view_id=view_id, values=values)
    answer = await deliver(ws, payload)
    with ws.lock:
        body = answer["json"] or {}
        if answer["status"] == 200 and body.get("response_action") == "errors":
            ws.views[view_id]["errors"] = body.get("errors") or {}
        elif answer["status"] == 200:
            ws.views.pop(view_id, None)  # Slack closes the modal on an empty 200
    return await _answer(request, ws, data["user"], answer)


async def close_view(request: web.Request):
    ws = request.app[WORKSPACE]
    data = await _control_body(request)
    with ws.lock:
        ws.views.pop(data.get("view_id", ""), None)
    raise web.HTTPSeeOther(f"/?user={data.get('user', '')}")


async def replay(request: web.Request):
    """Send an earlier delivery again, byte for byte (same signature and timestamp)."""
    ws = request.app[WORKSPACE]
    data = await _control_body(request)
    with ws.lock:
        earlier = ws.deliveries[int(data.get("index", -1))]
    answer = await deliver(ws, earlier["payload"], body=earlier["body"], headers=earlier["headers"])
    return web.json_response(answer)


async def _answer(request, ws, user_id, answer):
    """JSON for tests; for the page's forms, back to the page with the app's answer shown."""
    if request.content_type == "application/json":
        return web.json_response(answer)
    with ws.lock:
        if answer["status"] != 200:
            ws.notices[user_id] = f"The app answered {answer['status']}: {answer['body'][:300]}"
        else:
            ws.notices.pop(user_id, None)
    raise web.HTTPSeeOther(f"/?user={user_id}")


async def _control_body(request: web.Request) -> dict:
    if request.content_type == "application/json":
        return await request.json() if request.can_read_body else {}
    return dict(await request.post())


async def state(request: web.Request):
    ws = request.app[WORKSPACE]
    with ws.lock:
        return web.json_response({
            "messages": list(ws.messages.values()), "ephemerals": ws.ephemerals, "views": list(ws.views.values()),
            "calls": ws.calls, "deliveries": len(ws.deliveries), "users": list(ws.users.values()),
        })


async def reset(request: web.Request):
    ws = request.app[WORKSPACE]
    data = await _control_body(request)
    with ws.lock:
        ws.reset(data.get("users"))
    return web.json_response({"ok": True})


async def config(request: web.Request):
    ws = request.app[WORKSPACE]
    data = await _control_body(request)
    with ws.lock:
        for key in ("interactions_url", "signing_secret", "token"):
            if key in data:
                setattr(ws, key, data[key])
        if "faults" in data:
            ws.faults = dict(data["faults"] or {})
    return web.json_response({"ok": True, "interactions_url": ws.interactions_url})


async def page(request: web.Request):
    ws = request.app[WORKSPACE]
    with ws.lock:
        html = render_page(ws, request.query.get("user") or next(iter(ws.users), ""))
    return web.Response(text=html, content_type="text/html")


def build_app(*, token, signing_secret, interactions_url="", users=None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[WORKSPACE] = Workspace(token=token, signing_secret=signing_secret, interactions_url=interactions_url,
                               users=users)
    app.router.add_route("*", "/api/{method}", api_method)
    app.router.add_get("/", page)
    app.router.add_post("/_emulator/click", click)
    app.router.add_post("/_emulator/submit", submit)
    app.router.add_post("/_emulator/close", close_view)
    app.router.add_post("/_emulator/replay", replay)
    app.router.add_get("/_emulator/state", state)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_post("/_emulator/config", config)
    return app


__all__ = ["DEFAULT_CHANNEL", "build_app"]
