"""Local Robokassa emulator for development and tests (`python -m devtools.robokassa_sandbox`).

It speaks the HTTP that aiorobokassa sends for the Refund API v2 (JWT signed with password #3)
and two lookups Refund Office needs that Robokassa's public API lacks (see
refunds/providers/robokassa.py). `control` drives a running emulator over HTTP.
"""

DEFAULT_MERCHANT_LOGIN = "refundoffice-demo"
DEFAULT_PASSWORD3 = "sandbox-password-3"

# What happens to refunds of a payment: they start "processing" and, after --settle-seconds,
# become the label given here (None: they stay until POST /_config/refunds/{id}/settle).
REFUND_BEHAVIORS = {
    "finish": "finished",
    "cancel": "canceled",
    "stay": None,
}
DEFAULT_BEHAVIOR = "finish"
