"""Events and their signed webhook deliveries.

Replaces localstripe's `schedule_webhook`, which sleeps 1 s before each
delivery and opens a new HTTP session per event. Webhooks are still the ones
localstripe keeps (POST /_config/webhooks/{id} registers them).
"""

import asyncio
import hashlib
import hmac
import json
import logging
import time

import aiohttp
from localstripe import webhooks as ls_webhooks
from localstripe.resources import Event

from .state import STATE

# Sent as Event.api_version: the version stripe-python 16 pins.
API_VERSION = "2026-10-28.endive"
# Short pause so the API response reaches the client before its webhooks do,
# as it usually does at Stripe.
DELIVERY_DELAY = 0.05
DELIVERY_ATTEMPTS = 3
DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=5)

log = logging.getLogger("stripe_sandbox")
_session = None


def emit(type, obj, previous_attributes=None):
    """Create (and deliver) an Event about `obj`, a snapshot taken now."""
    event = Event(type, obj)
    if previous_attributes:
        event.data["previous_attributes"] = previous_attributes
    record(event)
    return event


def record(event):
    """Keep an Event created by us or by localstripe, and deliver it."""
    event.api_version = API_VERSION
    hooks = [hook for hook in ls_webhooks._webhooks.values()
             if hook.events is None or event.type in hook.events]
    event.pending_webhooks = len(hooks)
    event.request = {"id": None, "idempotency_key": None}
    STATE.events.append(event)
    STATE.stats.bump("events_created")
    if hooks:
        asyncio.ensure_future(_deliver(event, hooks))


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """Stripe-Signature header value, as stripe.Webhook.construct_event checks."""
    mac = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload),
                   hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


async def _deliver(event, hooks):
    await asyncio.sleep(DELIVERY_DELAY)
    payload = json.dumps(event._export()).encode()
    await asyncio.gather(*(_post(hook, event.type, payload) for hook in hooks))


async def _post(hook, event_type, payload):
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(timeout=DELIVERY_TIMEOUT)
    for attempt in range(DELIVERY_ATTEMPTS):
        if attempt:
            await asyncio.sleep(0.5 * 2 ** (attempt - 1))
        # Signed at send time, like Stripe, so retries stay within tolerance.
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Stripe-Signature": sign(payload, hook.secret,
                                            int(time.time()))}
        try:
            async with _session.post(hook.url, data=payload,
                                     headers=headers) as response:
                if 200 <= response.status < 300:
                    STATE.stats.bump("webhooks_delivered")
                    return
                problem = f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            problem = repr(exc)
        log.warning("webhook %s to %s failed (attempt %d): %s",
                    event_type, hook.url, attempt + 1, problem)
    STATE.stats.bump("webhooks_failed")


async def close():
    global _session
    if _session is not None:
        await _session.close()
        _session = None
