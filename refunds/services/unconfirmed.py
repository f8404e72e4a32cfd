"""A create call whose answer never came: what it may have done at the provider, found before
asking again when asking again could refund twice. Reads only; execution records what is found.

A provider without idempotent creates is asked for the payment's refunds that none of our rows
holds; one with idempotency keys is trusted while the key is fresh, and after that (Stripe
prunes keys after a day) asked for the refund carrying our merchant_refund_id.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.utils import timezone

from refunds.models import RefundLog, RefundRequest
from refunds.money import Money
from refunds.providers.base import ProviderRefundStatus, RefundResult


def unconfirmed_call_lookup(*, adapter, refund: RefundRequest) -> Callable[[], RefundResult | None] | None:
    """How to find the refund an earlier, unanswered create call made, when asking again could
    refund twice: always for a provider without idempotent creates, and once the key may have
    been forgotten for one with them. None: the key covers it."""
    if not adapter.idempotent_create:
        return functools.partial(_unrecorded_provider_refund, adapter=adapter, refund=refund)
    if _idempotency_key_may_have_expired(adapter=adapter, refund=refund):
        return functools.partial(
            adapter.find_refund,
            merchant_refund_id=refund.merchant_refund_id,
            connector_transaction_id=refund.connector_transaction_id,
        )
    return None


def _idempotency_key_may_have_expired(*, adapter, refund: RefundRequest) -> bool:
    """The provider may have forgotten the refund's key: it was first sent longer ago than the
    adapter relies on its keys (Stripe's are pruned after a day)."""
    trusted_for = adapter.idempotency_key_trusted_for
    if trusted_for is None:
        return False
    first_call = (
        refund.logs.filter(event=RefundLog.Event.PROVIDER_CALL)
        .order_by("created_at", "id")
        .values_list("created_at", flat=True)
        .first()
    )
    return first_call is not None and first_call <= timezone.now() - trusted_for


def _unrecorded_provider_refund(*, adapter, refund: RefundRequest) -> RefundResult | None:
    """The oldest refund of this payment at the provider that none of our records holds, of
    this refund's amount and not canceled: what an unanswered earlier call of ours made."""
    recorded = set(
        RefundRequest.objects.filter(provider=refund.provider, connector_transaction_id=refund.connector_transaction_id)
        .exclude(connector_refund_id="")
        .values_list("connector_refund_id", flat=True)
    )
    for result in adapter.list_refunds(connector_transaction_id=refund.connector_transaction_id):
        if (
            result.connector_refund_id not in recorded
            and result.amount == Money(refund.amount_minor, refund.currency)
            and result.status != ProviderRefundStatus.CANCELED
        ):
            return result
    return None
