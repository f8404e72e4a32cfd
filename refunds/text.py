"""Shapes of the identifiers and text people and tools send: shared by the API and the support forms."""

import re

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
