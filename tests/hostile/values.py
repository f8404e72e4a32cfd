"""Hostile values, by class, and how a client puts them on the wire.

Text is percent-encoded from its UTF-8 bytes with `surrogatepass`, so a lone surrogate arrives as
the bytes a hostile client can send (ED A0 80); in JSON bodies it is the `\\ud800` escape, which
JSON can carry and PostgreSQL cannot store."""

from __future__ import annotations

import collections
import itertools
from urllib.parse import quote

DEEP = 30_000  # far beyond Python's recursion limit, well under the body size limits

HOSTILE = {
    "nul": ["a\x00b", "\x00"],
    "control": ["\x01\x1b[31m", "x\x7fy", "\x85", "a\rb\x0bc"],
    "surrogate": ["\ud800", "a\udfffb"],
    "long": ["x" * 10_000, "9" * 10_000],
    "number": ["1e999999", "-1e999999", "99999999999999999999999", "-9223372036854775809", "-1", "NaN", "0x10"],
    "date": ["0001-01-01", "9999-12-31", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "0000-00-00"],
    "junk": ["", "%", "../../x", "<script>alert(1)</script>", "' OR 1=1 --", "[" * 200],
}
CLASSES = list(HOSTILE)


def wire(text: str) -> str:
    """`text` percent-encoded as a URL path segment or query/form value."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def form_body(fields: list[tuple[str, str]]) -> str:
    return "&".join(f"{wire(k)}={wire(v)}" for k, v in fields)


def json_values() -> list[tuple[str, object]]:
    """(class, value) for JSON bodies: the text values, plus numbers and structures as JSON has them."""
    values = [(cls, v) for cls, vs in HOSTILE.items() for v in vs]
    values += [("number", 10**30), ("number", -(10**30)), ("number", 1e308), ("number", -1), ("junk", None),
               ("junk", []), ("junk", {}), ("junk", True)]
    return values


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int = 10_000) -> str:
    """Objects nested `depth` deep: 10,000 fit under the API's 64 KB and the recursion limit is 1,000."""
    return '{"a":' * depth + "1" + "}" * depth


class Sampler:
    """Hands out a few hostile values per parameter, rotating through every class and value, so
    each parameter meets every class across the walk without trying the full product."""

    def __init__(self):
        pool = [(cls, v) for cls in CLASSES for v in HOSTILE[cls]]
        # Interleave classes so consecutive draws differ in class.
        by_class = [[(cls, v) for v in HOSTILE[cls]] for cls in CLASSES]
        interleaved = [x for group in itertools.zip_longest(*by_class) for x in group if x]
        assert len(interleaved) == len(pool)
        self._cycle = itertools.cycle(interleaved)

    def draw(self, n: int) -> list[tuple[str, str]]:
        """Always the NUL case (the class found first), plus the next `n` values of the rotation."""
        drawn = [("nul", "a\x00b")]
        while len(drawn) < n + 1:
            drawn.append(next(self._cycle))
        return drawn


class Tally:
    """What was tried: cases per class and per place, the (role, pattern) pairs walked, the 5xx."""

    def __init__(self):
        self.cases = collections.Counter()
        self.places = collections.Counter()
        self.walked: set[tuple[str, str]] = set()
        self.failures: list[str] = []  # distinct ones (first 300), and how many in all
        self.failure_count = 0
        self.seconds = collections.Counter()  # per route, to keep the walk quick

    def record(self, *, cls: str, place: str, status: int, what: str) -> None:
        self.cases[cls] += 1
        self.places[place] += 1
        if status >= 500:
            self.failure_count += 1
            if len(self.failures) < 300:
                self.failures.append(f"{status} {what}")

    def table(self) -> str:
        total = sum(self.cases.values())
        lines = ["| class | cases |", "| --- | ---: |"]
        lines += [f"| {cls} | {self.cases[cls]} |" for cls in sorted(self.cases)]
        lines += [f"| **all** | **{total}** |", ""]
        lines += [f"{place}: {count}" for place, count in sorted(self.places.items())]
        lines += [f"(role, URL pattern) pairs walked: {len(self.walked)}", f"5xx: {self.failure_count}"]
        return "\n".join(lines)
