"""Bounds on JSON from outside, checked on the raw bytes before anything parses them: Python's
parser (and everything that walks what it returns) recurses once per level, so a body nested
~30,000 deep under the size limit is a RecursionError, not a 400."""

from __future__ import annotations

import re

# Our API bodies are 3 levels deep, Stripe's events about 6; 32 leaves room and stays far from
# the recursion limit.
MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_too_deep(data: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text nests arrays and objects more than `max_depth` deep (brackets
    inside strings do not count). Malformed text is left for the parser to refuse."""
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b'""', data)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False
