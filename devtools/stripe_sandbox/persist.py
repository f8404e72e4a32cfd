"""--state-file: keep the sandbox's data across restarts.

Replaces localstripe's pickle-everything-on-every-write with a save at most
every SAVE_INTERVAL seconds (when something changed) and one at shutdown.
"""

import asyncio
import contextlib
import logging
import os
import pickle

from aiohttp import web
from localstripe.resources import store

from . import disputes, refunds
from .state import STATE

SAVE_INTERVAL = 0.5
FORMAT = 1

log = logging.getLogger("stripe_sandbox")


@web.middleware
async def mark_dirty_middleware(request, handler):
    if request.method in ("POST", "DELETE"):
        STATE.dirty = True
    return await handler(request)


def load(path):
    with open(path, "rb") as f:
        data = pickle.load(f)
    if data.get("format") != FORMAT:
        raise SystemExit(f"{path}: not a stripe sandbox state file")
    STATE.reset_data()
    store.clear()
    store.update(data["store"])
    STATE.idempotency.update(data["idempotency"])
    refunds.rebuild_index()
    disputes.rebuild_index()
    STATE.dirty = False


def save(path):
    data = {"format": FORMAT, "store": dict(store),
            # Requests still executing have nothing to replay yet.
            "idempotency": {key: entry for key, entry
                            in STATE.idempotency.items()
                            if entry.status is not None}}
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)  # a crash mid-save keeps the previous file
    STATE.dirty = False


async def _autosave(path):
    while True:
        await asyncio.sleep(SAVE_INTERVAL)
        if STATE.dirty:
            save(path)


def attach(app, path):
    if os.path.exists(path):
        load(path)
        log.info("loaded %d objects from %s", len(store), path)

    async def run_autosave(app):
        task = asyncio.ensure_future(_autosave(path))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        save(path)

    app.cleanup_ctx.append(run_autosave)
