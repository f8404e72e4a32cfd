"""Local Robokassa emulator for development and tests (`python -m devtools.robokassa_sandbox`).

It speaks what Refund Office sends to Robokassa: the Refund API v2 as aiorobokassa calls it
(JWT signed with password #3) and the XML interface OpStateExt (signed with password #2), with
Robokassa's own paths, so only ROBOKASSA_API_BASE differs. `control` drives it over HTTP.
"""

DEFAULT_MERCHANT_LOGIN = "refundoffice-demo"
DEFAULT_PASSWORD2 = "sandbox-password-2"
DEFAULT_PASSWORD3 = "sandbox-password-3"
DEFAULT_SIGNATURE_ALGORITHM = "MD5"

# What happens to refunds of a payment: they start "processing" and, after --settle-seconds,
# become the label given here (None: they stay until POST /_config/refunds/{id}/settle).
REFUND_BEHAVIORS = {
    "finish": "finished",
    "cancel": "canceled",
    "stay": None,
}
DEFAULT_BEHAVIOR = "finish"
