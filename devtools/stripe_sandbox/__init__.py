"""Local Stripe sandbox: localstripe in its own process, extended for refunds.

localstripe is GPL, so it is only ever imported by the server process
(`python -m devtools.stripe_sandbox`). This module and `control` are the parts
other code may import: they hold the magic values and talk HTTP only.
"""

DEFAULT_API_KEY = "sk_test_sandbox"

# Payment metadata key that picks what happens to refunds of that payment.
BEHAVIOR_METADATA_KEY = "sandbox_refund_behavior"

# behaviour -> (status at creation, status it settles to after --settle-seconds;
# None means it stays until POST /_config/refunds/{id}/settle).
REFUND_BEHAVIORS = {
    "succeed": ("succeeded", None),
    "pending": ("pending", "succeeded"),
    "fail": ("pending", "failed"),
    "cancel": ("pending", "canceled"),
    "requires_action": ("requires_action", "succeeded"),
    "stay_pending": ("pending", None),
    # What Stripe's test card 4000000000005126 does.
    "succeed_then_fail": ("succeeded", "failed"),
}
DEFAULT_BEHAVIOR = "succeed"

# Stripe's refund test cards, and the test PaymentMethods that use them.
CARD_BEHAVIORS = {
    "4000000000007726": "pending",
    "4000000000005126": "succeed_then_fail",
}
CARD_TEST_PAYMENT_METHODS = {
    "pm_card_pendingRefund": "4000000000007726",
    "pm_card_refundFail": "4000000000005126",
}
