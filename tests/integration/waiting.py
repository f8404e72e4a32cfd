"""Waiting on a refund's status as a real worker moves it (a condition with a timeout, never a sleep)."""

from refunds.models import RefundRequest
from tests.fixtures.worker import wait_until


def status_of(merchant_refund_id):
    return RefundRequest.objects.filter(merchant_refund_id=merchant_refund_id).values_list("status", flat=True).first()


def wait_for_status(merchant_refund_id, status, timeout=60):
    wait_until(lambda: status_of(merchant_refund_id) == status, timeout=timeout,
               message=f"{merchant_refund_id} -> {status} (now {status_of(merchant_refund_id)})")
    return RefundRequest.objects.get(merchant_refund_id=merchant_refund_id)
