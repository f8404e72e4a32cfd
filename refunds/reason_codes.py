"""The default reason codes, kept present after every migrate (and after a test flush)."""

from refunds.models import ReasonCode

# (code, label, position); what each means to a provider is the provider adapter's (e.g.
# refunds/providers/stripe.py REASON_BY_CODE).
DEFAULT_REASON_CODES = [
    ("duplicate_charge", "Duplicate charge", 10),
    ("product_return", "Product return", 20),
    ("service_cancellation", "Service cancellation", 30),
    ("goodwill", "Goodwill", 40),
    ("fraud", "Fraud", 50),
    ("other", "Other", 90),
]


def ensure_reason_codes(sender=None, **kwargs):
    """Create the defaults that are missing; never touch codes a superuser has edited."""
    for code, label, position in DEFAULT_REASON_CODES:
        ReasonCode.objects.get_or_create(code=code, defaults={"label": label, "position": position})


def active_reason_codes() -> list[str]:
    """Codes a request may use. Falls back to the defaults where the database cannot be read
    (the OpenAPI schema is also built outside requests)."""
    try:
        return list(ReasonCode.objects.filter(active=True).values_list("code", flat=True))
    except Exception:  # noqa: BLE001 - no database yet (collection, checks)
        return [code for code, *_ in DEFAULT_REASON_CODES]
