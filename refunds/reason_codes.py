"""The default reason codes, kept present after every migrate (and after a test flush)."""

from refunds.models import ReasonCode

# (code, label, Stripe's reason, position)
DEFAULT_REASON_CODES = [
    ("duplicate_charge", "Duplicate charge", "duplicate", 10),
    ("product_return", "Product return", "requested_by_customer", 20),
    ("service_cancellation", "Service cancellation", "requested_by_customer", 30),
    ("goodwill", "Goodwill", "requested_by_customer", 40),
    ("fraud", "Fraud", "fraudulent", 50),
    ("other", "Other", "", 90),
]


def ensure_reason_codes(sender=None, **kwargs):
    """Create the defaults that are missing; never touch codes a superuser has edited."""
    for code, label, stripe_reason, position in DEFAULT_REASON_CODES:
        ReasonCode.objects.get_or_create(
            code=code, defaults={"label": label, "stripe_reason": stripe_reason, "position": position}
        )


def active_reason_codes() -> list[str]:
    """Codes a request may use. Falls back to the defaults where the database cannot be read
    (the OpenAPI schema is also built outside requests)."""
    try:
        return list(ReasonCode.objects.filter(active=True).values_list("code", flat=True))
    except Exception:  # noqa: BLE001 - no database yet (collection, checks)
        return [code for code, *_ in DEFAULT_REASON_CODES]
