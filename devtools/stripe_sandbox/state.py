"""In-memory state the sandbox adds next to localstripe's `store`.

Everything runs on one asyncio thread, so plain dicts and lists are enough.
"""

import collections
import dataclasses
import time


@dataclasses.dataclass
class IdempotentEntry:
    endpoint: str            # "POST /v1/refunds"
    params: str              # canonical JSON of the request parameters
    status: int | None = None  # None while the first request is executing
    body: bytes = b""


@dataclasses.dataclass
class Fault:
    status: int | None
    count: int | None        # None: until cleared
    delay_seconds: float
    path_prefix: str
    methods: frozenset | None
    after: bool

    def matches(self, method, path):
        return (path.startswith(self.path_prefix)
                and (self.methods is None or method in self.methods))

    def to_json(self):
        data = dataclasses.asdict(self)
        data["methods"] = sorted(self.methods) if self.methods else None
        return data


class TokenBucket:
    def __init__(self, per_second):
        self.rate = float(per_second)
        self.capacity = max(1.0, self.rate)  # allows a one-second burst
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self):
        """Return 0 if a token was taken, else the seconds until one frees."""
        now = time.monotonic()
        self.tokens = min(self.capacity,
                          self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Stats:
    COUNTERS = ("refunds_created", "idempotent_replays", "rate_limited",
                "responses_429", "faults_injected", "events_created",
                "webhooks_delivered", "webhooks_failed")

    def __init__(self):
        self.reset()

    def reset(self):
        self.started = time.time()
        self.requests = collections.Counter()  # (endpoint, status) -> n
        self.counters = dict.fromkeys(self.COUNTERS, 0)

    def bump(self, name, n=1):
        self.counters[name] += n

    def to_json(self):
        requests = {}
        for (endpoint, status), n in sorted(self.requests.items()):
            requests.setdefault(endpoint, {})[str(status)] = n
        return {"requests": requests, **self.counters,
                "since": int(self.started),
                "seconds": round(time.time() - self.started, 3)}


class SandboxState:
    def __init__(self):
        self.settle_seconds = 2.0
        self.faults = []
        self.rate_limit = None
        self.stats = Stats()
        self.dirty = False  # something to save to --state-file
        self.reset_data()

    def reset_data(self):
        """Forget the data (not the configuration: faults, rate limit, hooks)."""
        self.idempotency = {}        # key -> IdempotentEntry
        self.refunds = {}            # id -> refund, in creation order
        self.refunds_by_charge = {}  # charge id -> [refund], creation order
        self.events = []             # creation order
        self.disputes_by_charge = {}  # charge id -> [dispute], creation order
        self.settlements = []        # heap of (due wall-clock time, refund id)
        self.stats.reset()
        self.dirty = True

    def take_fault(self, method, path):
        for i, fault in enumerate(self.faults):
            if fault.matches(method, path):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        del self.faults[i]
                return fault
        return None


STATE = SandboxState()
