"""Running Hyperswitch Prism's async SDK from sync code (Django views, Celery tasks).

Prism's clients (payments.PaymentClient, payments.RefundClient) are async and keep an
httpx.AsyncClient, which belongs to the event loop it was made in. So:

- each thread has one event loop of its own, made on its first Prism call and kept for the
  thread's life (a Celery worker's thread, a web worker's thread); its clients are made in it
  and reused, so connections are pooled and nothing is made per call;
- a call from a thread that already runs a loop (async code) goes to one helper thread, which
  has its own loop the same way: a running loop is never blocked on itself;
- every call is bounded twice: Prism's own HTTP timeouts and asyncio.wait_for around it;
- a forked child (Celery's prefork pool) starts without its parent's loop and clients;
  `close_thread_runtime()` closes this thread's clients and loop (tests, shutdown, atexit).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import Callable, Hashable

_local = threading.local()
_helper: concurrent.futures.ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()


class _Runtime:
    """One thread's loop and the SDK clients made in it, by key."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.clients: dict[Hashable, object] = {}

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._close_here()
        # This thread runs another loop (async code, Playwright's): ours is closed elsewhere.
        closer = threading.Thread(target=self._close_here, name="prism-close")
        closer.start()
        closer.join(timeout=10)

    def _close_here(self) -> None:
        for client in self.clients.values():
            try:
                self.loop.run_until_complete(asyncio.wait_for(client.close(), 5))
            except Exception:  # noqa: BLE001 - closing is best effort; the loop closes anyway
                pass
        self.clients.clear()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def __del__(self):
        # A thread that ends drops its thread-local runtime: its loop closes with it (the
        # clients' sockets close as they are collected).
        if not self.loop.is_closed() and not self.loop.is_running():
            self.loop.close()


def _runtime() -> _Runtime:
    runtime = getattr(_local, "runtime", None)
    if runtime is None or runtime.loop.is_closed():
        runtime = _local.runtime = _Runtime()
    return runtime


def close_thread_runtime() -> None:
    runtime = getattr(_local, "runtime", None)
    if runtime is not None:
        runtime.close()
        _local.runtime = None


def _forget_after_fork() -> None:
    global _helper
    # The parent's loop and connections are not ours to use (nor to close) in a child.
    _local.runtime = None
    _helper = None


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(close_thread_runtime)


def _run_here(key: Hashable, make_client: Callable[[], object], operation, timeout: float):
    runtime = _runtime()
    client = runtime.clients.get(key)
    if client is None:
        client = runtime.clients[key] = make_client()
    return runtime.loop.run_until_complete(asyncio.wait_for(operation(client), timeout))


def run(key: Hashable, make_client: Callable[[], object], operation, *, timeout: float):
    """`await operation(client)` for this thread's client of `key` (made by `make_client` in
    this thread's loop the first time), bounded by `timeout` seconds."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(key, make_client, operation, timeout)
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="prism")
        helper = _helper
    return helper.submit(_run_here, key, make_client, operation, timeout).result()
