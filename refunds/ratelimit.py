"""A per-provider request rate shared by every web and worker process.

Time is cut into slots of 1/rate seconds; a caller owns a slot by `cache.add` on its key,
which is atomic in Redis (SET NX) and in the database cache (a primary key). So the whole
fleet sends at most `rate` requests a second, evenly spaced, however many workers there are.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

from refunds.providers.base import TransientProviderError

logger = logging.getLogger(__name__)


class RateLimited(TransientProviderError):
    """No slot was free in time: try later. Not a provider failure and not an attempt."""

    def __init__(self, provider: str, retry_in: float):
        super().__init__(f"Holding back: the {provider} request rate is fully booked.", code="local_rate_limit")
        self.retry_in = retry_in


def provider_rate(provider: str) -> float | None:
    rate = settings.PROVIDER_RATE_LIMITS.get(provider)
    return float(rate) if rate else None


def provider_slot_acquire(provider: str, *, max_wait: float) -> float:
    """Book the earliest free slot within `max_wait` seconds and sleep until it starts.
    Returns the seconds waited; raises RateLimited when every slot in reach is taken."""
    rate = provider_rate(provider)
    if rate is None:
        return 0.0
    interval = 1.0 / rate
    started = time.time()
    first = math.floor(started / interval)
    last = math.floor((started + max_wait) / interval)
    ttl = int(max_wait) + 5
    for slot in range(first, last + 1):
        try:
            booked = cache.add(f"ratelimit:{provider}:{slot}", 1, timeout=ttl)
        except Exception:  # noqa: BLE001 - the cache (Redis) is down
            # Fail open: intake and approvals must work without Redis; the provider's own
            # 429s, honoured by the submit task, are the limit meanwhile.
            logger.warning("rate limit cache unavailable; calling %s unthrottled", provider, exc_info=True)
            return 0.0
        if booked:
            delay = slot * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            return time.time() - started
    raise RateLimited(provider, retry_in=max_wait + (last - first + 1) * interval)
