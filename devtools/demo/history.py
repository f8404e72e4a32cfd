"""Two months of made-up, already finished refunds and sales, so the dashboard, the daily
summary and the exports have something to show on a fresh demo. Demo data only: the rows are
written directly (they never reach a provider) and are all in a final status, so the dispatcher
never picks them up. Every row is marked (merchant ids start with "hist-", sales come from the
import batch "demo history")."""

import contextlib
import random
import uuid
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.models import Approval
from refunds.models import Payment, RefundLog, RefundRequest, RefundStatus, Sale
from refunds.reports.calendar import business_today, business_zone

HISTORY_BATCH = "demo history"
# product: (price in cents, sales a day, share refunded, reason codes)
_PRODUCTS = {
    "Blue mug": (4_900, 30, 0.03, ["product_return", "duplicate_charge"]),
    "Desk lamp": (12_900, 12, 0.05, ["product_return"]),
    "Standing desk": (89_900, 3, 0.12, ["product_return", "goodwill"]),
    "Headphones": (15_000, 10, 0.09, ["product_return", "service_cancellation"]),
    "Office chair": (39_900, 4, 0.07, ["product_return"]),
    "Annual licence": (250_000, 1, 0.20, ["service_cancellation"]),
    "Gift card": (2_500, 20, 0.01, ["fraud", "other"]),
}
_FINAL_MIX = [
    (RefundStatus.SUCCEEDED, 0.84),
    (RefundStatus.REJECTED, 0.07),
    (RefundStatus.FAILED, 0.05),
    (RefundStatus.CANCELED, 0.04),
]
_FAILURE_CODES = ["charge_disputed", "expired_or_canceled_card", "insufficient_funds"]


def demo_history_create(*, users: dict, days: int = 60, seed: int = 7) -> int:
    """Create the history once (kept when it exists). Returns the number of refunds made."""
    if Sale.objects.filter(import_batch=HISTORY_BATCH).exists():
        return 0
    rng = random.Random(seed)
    zone = business_zone()
    today = business_today()
    agent, managers = users["agent"], [users["manager"], users["manager2"]]
    sales, refunds = [], []
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        for product, (price, per_day, refund_share, reasons) in _PRODUCTS.items():
            for _ in range(max(0, round(rng.gauss(per_day, per_day / 4)))):
                sold_at = datetime.combine(day, time(8), zone) + timedelta(minutes=rng.randint(0, 12 * 60))
                sale_id = f"hist-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
                sales.append(Sale(source=Sale.Source.IMPORT, external_id=sale_id, product=product,
                                  amount_minor=price, currency="USD", sold_at=sold_at, import_batch=HISTORY_BATCH))
                if rng.random() < refund_share:
                    refund = _history_refund(rng, sale_id, product, price, sold_at, reasons, agent, managers)
                    if refund["refund"].resolved_at < timezone.now():  # history, not the future
                        refunds.append(refund)
    with transaction.atomic():
        Sale.objects.bulk_create(sales, batch_size=1000)
        payments = Payment.objects.bulk_create(
            [Payment(provider="stripe", connector_transaction_id=f"pi_{r['sale_id']}", amount_minor=r["price"],
                     currency="USD", amount_refunded_minor=r["refund"].amount_minor if r["refund"].status ==
                     RefundStatus.SUCCEEDED else 0, status="succeeded", product=r["refund"].product)
             for r in refunds],
            batch_size=1000,
        )
        for payment, r in zip(payments, refunds):
            r["refund"].payment = payment
        for r in refunds:
            r["refund"].created_at = r["created_at"]
        with _given_creation_times(RefundRequest, Approval, RefundLog):
            RefundRequest.objects.bulk_create([r["refund"] for r in refunds], batch_size=1000)
            Approval.objects.bulk_create([a for r in refunds for a in r["approvals"](r["refund"])], batch_size=1000)
            RefundLog.objects.bulk_create([log for r in refunds for log in r["logs"](r["refund"])], batch_size=1000)
    return len(refunds)


@contextlib.contextmanager
def _given_creation_times(*models):
    """auto_now_add would stamp every made-up row with today; history needs its own times
    (and RefundLog rows cannot be updated afterwards)."""
    fields = [(field, field.auto_now_add) for field in (model._meta.get_field("created_at") for model in models)]
    for field, _ in fields:
        field.auto_now_add = False
    try:
        yield
    finally:
        for field, was in fields:  # RefundRequest's has a default instead (given by intake)
            field.auto_now_add = was


def _history_refund(rng, sale_id, product, price, sold_at, reasons, agent, managers) -> dict:
    created_at = sold_at + timedelta(hours=rng.uniform(2, 24 * 6))
    amount = price if rng.random() < 0.7 else max(100, round(price * rng.uniform(0.2, 0.8), -2))
    status = rng.choices([s for s, _ in _FINAL_MIX], weights=[w for _, w in _FINAL_MIX])[0]
    auto = amount <= settings.REFUND_AUTO_APPROVE_DEFAULT
    approver = None if auto else rng.choice(managers)
    decided_at = created_at + (timedelta(seconds=1) if auto else timedelta(minutes=rng.lognormvariate(4.2, 0.9)))
    resolved_at = decided_at + timedelta(minutes=rng.lognormvariate(1.5, 0.8))
    if status == RefundStatus.REJECTED and auto:
        status = RefundStatus.SUCCEEDED
    approved_at = None if status == RefundStatus.REJECTED else decided_at
    failed = status == RefundStatus.FAILED
    refund = RefundRequest(
        merchant_refund_id=sale_id, provider="stripe", connector_transaction_id=f"pi_{sale_id}",
        amount_minor=amount, currency="USD", reason="Demo history", reason_code_id=rng.choice(reasons),
        product=product, status=status, requested_by=agent, request_fingerprint="demo-history",
        idempotency_key=f"refundoffice-{sale_id}", payment_verified=True,
        connector_refund_id=f"re_{sale_id}" if approved_at else "",
        provider_status="failed" if failed else ("succeeded" if status == RefundStatus.SUCCEEDED else ""),
        error_code=rng.choice(_FAILURE_CODES) if failed else "",
        error_message="The bank returned the refund." if failed else "",
        approved_at=approved_at, submitted_at=approved_at, resolved_at=resolved_at,
    )

    def approvals(saved):
        if auto:
            return [Approval(refund=saved, decision=Approval.Decision.AUTO_APPROVED, created_at=decided_at)]
        decision = Approval.Decision.REJECTED if status == RefundStatus.REJECTED else Approval.Decision.APPROVED
        comment = "Outside the return window" if decision == Approval.Decision.REJECTED else ""
        return [Approval(refund=saved, approver=approver, decision=decision, comment=comment, created_at=decided_at)]

    def logs(saved):
        return [
            RefundLog(refund=saved, event=RefundLog.Event.REQUESTED, to_status=RefundStatus.PENDING_APPROVAL,
                      actor=agent, message="Demo history", created_at=created_at),
            RefundLog(refund=saved, event=RefundLog.Event.STATUS_CHANGED, from_status=RefundStatus.PENDING_APPROVAL,
                      to_status=status, actor=approver, message="Demo history", created_at=resolved_at),
        ]

    return {"sale_id": sale_id, "price": price, "refund": refund, "created_at": created_at,
            "approvals": approvals, "logs": logs}
