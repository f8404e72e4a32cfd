"""Shapes of the identifiers and text people and tools send: shared by the API and the support forms."""

import re
from dataclasses import dataclass, field

MERCHANT_REFUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
# Any provider's ids fit this; each adapter's validate_transaction_id says what is its own.
TRANSACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,254}$")
# C0/C1 control characters except tab and newline, which a reason may contain; and lone
# surrogates, which JSON can carry but no database can store.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# The same rule as a JSON Schema pattern (ECMA regex), for the published schema.
PRINTABLE_PATTERN = "^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$"
# Printable, and not blank.
PRINTABLE_NOT_BLANK_PATTERN = "^(?=[\\s\\S]*\\S)" + PRINTABLE_PATTERN[1:]


def is_printable(value: str) -> bool:
    return not CONTROL_CHARACTERS.search(value)


# What no database column holds: NUL (PostgreSQL refuses it in text and jsonb) and lone surrogates.
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def unstorable_text_path(value) -> str | None:
    """The path (`data.object.id`, `items[2]`) of the first string, key or value, in parsed JSON
    that no database can store; None when there is none. Iterative: depth is bounded elsewhere."""
    stack = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                return path or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                here = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and UNSTORABLE.search(key):
                    return here
                stack.append((here, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return None


@dataclass
class FileProblems:
    """What is wrong with an uploaded file, by line: every problem counted, the first `max_shown`
    kept to show (the sales import and bulk refund files)."""

    max_shown: int = 50
    shown: list[str] = field(default_factory=list)
    total: int = 0

    def add(self, line: int | None, message: str) -> None:
        self.total += 1
        if len(self.shown) < self.max_shown:
            self.shown.append(f"Line {line}: {message}" if line else message)
