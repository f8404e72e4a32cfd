"""Refunded and disputed: refunds whose payment was disputed after they had succeeded (the
customer may get the money twice), flagged (`disputed_at`) by refunds.services.disputes."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from refunds.models import RefundRequest

@dataclass(frozen=True)
class DisputedRefund:
    """A refund that succeeded and whose payment was then disputed (money at risk twice)."""

    merchant_refund_id: str
    connector_transaction_id: str
    provider: str
    amount_minor: int
    currency: str
    dispute_id: str
    dispute_status: str
    disputed_at: datetime.datetime


# Rows of "refunded and disputed" listed by name; the count covers them all.
DISPUTED_ROWS_SHOWN = 50



def refunds_disputed_after_success(*, since: datetime.datetime, until: datetime.datetime) -> tuple[int, tuple[DisputedRefund, ...]]:
    """How many refunds were flagged in [since, until), and the first DISPUTED_ROWS_SHOWN of them
    (oldest flag first). Reads the partial index on disputed_at."""
    flagged = RefundRequest.objects.filter(disputed_at__gte=since, disputed_at__lt=until).order_by("disputed_at", "pk")
    rows = tuple(
        DisputedRefund(
            merchant_refund_id=row["merchant_refund_id"],
            connector_transaction_id=row["connector_transaction_id"],
            provider=row["provider"],
            amount_minor=row["amount_minor"],
            currency=row["currency"],
            dispute_id=row["payment__dispute_id"],
            dispute_status=row["payment__dispute_status"],
            disputed_at=row["disputed_at"],
        )
        for row in flagged.values(
            "merchant_refund_id", "connector_transaction_id", "provider", "amount_minor", "currency",
            "payment__dispute_id", "payment__dispute_status", "disputed_at",
        )[:DISPUTED_ROWS_SHOWN]
    )
    return (len(rows) if len(rows) < DISPUTED_ROWS_SHOWN else flagged.count()), rows
