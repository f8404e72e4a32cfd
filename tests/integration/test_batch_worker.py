"""A refund batch filed by a real worker that is killed mid-batch: another run takes the batch over
once the dead worker's lease lapses, every row ends filed once, and Stripe makes exactly one refund
per row."""

import pytest

from refunds.models import RefundBatch, RefundRequest, RefundStatus
from refunds.services import batches
from tests.fixtures.worker import wait_until
from tests.integration.test_chaos import provider_refunds, since, stripe_counters
from tests.refunds.test_batches import csv_bytes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROWS = 40


def state(batch_id):
    return RefundBatch.objects.filter(pk=batch_id).values_list("state", flat=True).first()


def test_a_worker_killed_mid_batch_files_each_row_once(live_worker, agent, stripe_sandbox):
    pis = [stripe_sandbox.create_payment(10_000) for _ in range(ROWS)]
    # 10.00 each: under the default auto-approve threshold (50.00), so each row is sent to Stripe.
    data = csv_bytes(*[f"kill-{i:03},stripe,{pi},10.00,USD,,Outage,Pro" for i, pi in enumerate(pis)])
    batch = batches.refund_batch_create(user=agent, data=data, file_name="outage.csv")
    wait_until(lambda: state(batch.pk) == "checked", timeout=120, message="the dry run")
    assert set(batch.rows.values_list("plan", flat=True)) == {"auto"}
    before = stripe_counters(stripe_sandbox)

    # Each payment lookup takes 0.3 s, so the filing is still under way when the worker dies.
    stripe_sandbox.set_faults(None, count=None, delay_seconds=0.3, path_prefix="/v1/payment_intents", methods=["GET"])
    batches.refund_batch_confirm(batch_id=batch.pk, user=agent)
    wait_until(lambda: RefundRequest.objects.count() >= 8, timeout=120, message="some rows filed")
    live_worker.kill()
    stripe_sandbox.clear_faults()
    filed_before = RefundRequest.objects.count()
    assert filed_before < ROWS and state(batch.pk) == "filing"
    live_worker.start()

    # The sweeper hands the batch to the new worker once the dead one's lease (5 s) lapses.
    wait_until(lambda: state(batch.pk) == "done", timeout=180, message="the batch to finish")
    batch.refresh_from_db()
    assert batch.rows_done == ROWS
    assert RefundRequest.objects.count() == ROWS
    assert sorted(batch.rows.values_list("refund__merchant_refund_id", flat=True)) == [f"kill-{i:03}" for i in range(ROWS)]
    assert set(batch.rows.values_list("outcome", flat=True)) == {"filed"}
    wait_until(lambda: RefundRequest.objects.filter(status=RefundStatus.SUCCEEDED).count() == ROWS, timeout=180,
               message="every refund to succeed")
    for pi in pis:
        assert [r.amount for r in provider_refunds(stripe_sandbox, pi)] == [1000]
    assert since(stripe_sandbox, before)["refunds_created"] == ROWS
