"""A per-provider request rate shared by every web and worker process.

Time is cut into slots of 1/rate seconds and each caller books one, so the whole fleet sends
at most `rate` requests a second, evenly spaced, however many workers there are:
- on Redis, one atomic script takes the provider's next free slot (a counter): one round trip
  per booking, however many callers are waiting ahead;
- on the database cache (no Redis: the embedded defaults), a caller owns a slot by `cache.add`
  on its key (a primary key), trying slot after slot.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache

from refunds.dbconn import connection_release_before_wait
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
    Returns the seconds waited; raises RateLimited when every slot in reach is taken.
    Every provider call is preceded by this, so the caller's pooled database connection goes
    back to the pool here, before the waits (the slot's, then the call's)."""
    connection_release_before_wait()
    rate = provider_rate(provider)
    if rate is None:
        return 0.0
    interval = 1.0 / rate
    started = time.time()
    first = math.floor(started / interval)
    last = math.floor((started + max_wait) / interval)
    ttl = int(max_wait) + 5
    try:
        slot = _book(provider, first, last, ttl)
    except Exception:  # noqa: BLE001 - the cache (Redis) is down
        # Fail open: intake and approvals must work without Redis; the provider's own
        # 429s, honoured by the submit task, are the limit meanwhile.
        logger.warning("rate limit cache unavailable; calling %s unthrottled", provider, exc_info=True)
        return 0.0
    if slot is None:
        raise RateLimited(provider, retry_in=max_wait + (last - first + 1) * interval)
    delay = slot * interval - time.time()
    if delay > 0:
        time.sleep(delay)
    return time.time() - started


# KEYS[1]: the provider's next free slot. ARGV: the first and last slot in reach, the key's TTL.
_NEXT_FREE_SLOT = """
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), tonumber(ARGV[1]))
if slot > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], slot + 1, 'EX', tonumber(ARGV[3]))
return slot
"""


def _book(provider: str, first: int, last: int, ttl: int) -> int | None:
    """Book the earliest free slot in [first, last]; None when every one is taken."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        key = backend.make_and_validate_key(f"ratelimit:{provider}:next")
        # Django's Redis cache has no public way to run a script: its redis-py client does.
        slot = backend._cache.get_client(key, write=True).eval(_NEXT_FREE_SLOT, 1, key, first, last, ttl)
        return None if slot < 0 else int(slot)
    for slot in range(first, last + 1):
        if cache.add(f"ratelimit:{provider}:{slot}", 1, timeout=ttl):
            return slot
    return None
