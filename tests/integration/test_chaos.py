"""Faults injected for real: concurrent humans, duplicated and redelivered tasks, a worker
killed mid-refund, a payment raced by partial refunds, the broker gone, the provider failing.
Each asserts exactly one provider refund per request and the right final state."""

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection

from refunds.models import RefundRequest, RefundStatus
from refunds.tasks import refund_submit_task
from tests import factories
from tests.fixtures.worker import wait_until
from tests.markers import needs_row_locks

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def file_refund(client, pi, merchant_refund_id, minor_amount):
    return client.post(
        "/api/refunds/",
        {"merchant_refund_id": merchant_refund_id, "connector_transaction_id": pi,
         "amount": {"minor_amount": minor_amount, "currency": "USD"}},
        format="json",
    )


def provider_refunds(stripe_sandbox, pi):
    return list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).auto_paging_iter())


def wait_for_status(merchant_refund_id, status, timeout=60):
    def current():
        return RefundRequest.objects.filter(merchant_refund_id=merchant_refund_id).values_list("status", flat=True).first()

    wait_until(lambda: current() == status, timeout=timeout, message=f"{merchant_refund_id} -> {status} (now {current()})")
    return RefundRequest.objects.get(merchant_refund_id=merchant_refund_id)


def threaded(fn, items, workers=20):
    def run(item):
        try:
            return fn(item)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, items))


@needs_row_locks
def test_a_twenty_concurrent_approvals(live_worker, api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(100_000)
    assert file_refund(api(agent), pi, "chaos-a", 60_000).json()["status"] == "pending_approval"
    clients = [api(factories.manager(username=f"approver{i}")) for i in range(20)]

    responses = threaded(lambda client: client.post("/api/refunds/chaos-a/approve/", {}, format="json"), clients)

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 19
    refund = wait_for_status("chaos-a", RefundStatus.SUCCEEDED)
    assert refund.approvals.count() == 1
    assert [r.amount for r in provider_refunds(stripe_sandbox, pi)] == [60_000]


def test_b_execute_task_delivered_five_times(live_worker, api, agent, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(100_000)
    file_refund(api(agent), pi, "chaos-b", 70_000)
    refund = RefundRequest.objects.get(merchant_refund_id="chaos-b")
    api(manager).post("/api/refunds/chaos-b/approve/", {}, format="json")

    for _ in range(5):
        refund_submit_task.delay(refund.pk)

    wait_for_status("chaos-b", RefundStatus.SUCCEEDED)
    assert len(provider_refunds(stripe_sandbox, pi)) == 1
    time.sleep(1)  # let the duplicates finish: they must still not refund again
    assert len(provider_refunds(stripe_sandbox, pi)) == 1


def test_c_worker_killed_right_after_the_provider_call(live_worker, api, agent, stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(10_000)
    # Stripe makes the refund, then the answer hangs: the worker dies before it can commit.
    stripe_sandbox.set_faults(status=500, count=1, after=True, delay_seconds=30, path_prefix="/v1/refunds", methods=["POST"])
    before = stripe_sandbox.stats()["refunds_created"]
    file_refund(api(agent), pi, "chaos-c", 2_000)
    wait_until(lambda: stripe_sandbox.stats()["refunds_created"] == before + 1, message="the provider to act")

    live_worker.kill()
    stripe_sandbox.clear_faults()
    assert RefundRequest.objects.get(merchant_refund_id="chaos-c").connector_refund_id == ""
    live_worker.start()

    refund = wait_for_status("chaos-c", RefundStatus.SUCCEEDED)
    [only] = provider_refunds(stripe_sandbox, pi)
    assert only.id == refund.connector_refund_id


@needs_row_locks
def test_d_concurrent_partial_refunds_beyond_the_payment(live_worker, api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)

    responses = threaded(lambda i: file_refund(client, pi, f"chaos-d-{i}", 3_000), range(8), workers=8)

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [422] * 5
    for r in responses:
        if r.status_code == 201:
            wait_for_status(r.json()["merchant_refund_id"], RefundStatus.SUCCEEDED)
    assert sorted(r.amount for r in provider_refunds(stripe_sandbox, pi)) == [3_000] * 3


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the broker being stopped is Redis)")
def test_e_redis_stopped_during_intake(live_worker, api, agent, manager, stripe_sandbox):
    port = int(settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    pi = stripe_sandbox.create_payment(100_000)
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False, capture_output=True)
    try:
        small = file_refund(api(agent), pi, "chaos-e-small", 1_000)
        big = file_refund(api(agent), pi, "chaos-e-big", 9_000)
        approved = api(manager).post("/api/refunds/chaos-e-big/approve/", {}, format="json")
        # The database is the source of truth: intake and approval succeed without the broker.
        assert (small.status_code, big.status_code, approved.status_code) == (201, 201, 200)
        assert small.json()["status"] == "approved" and approved.json()["status"] == "approved"
    finally:
        subprocess.run(
            [shutil.which("redis-server") or "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1",
             "--port", str(port), "--save", "", "--appendonly", "no"],
            check=True, capture_output=True,
        )
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0,
                   message="redis back")

    wait_for_status("chaos-e-small", RefundStatus.SUCCEEDED)
    wait_for_status("chaos-e-big", RefundStatus.SUCCEEDED)
    assert sorted(r.amount for r in provider_refunds(stripe_sandbox, pi)) == [1_000, 9_000]


def test_f_provider_failing_for_a_while(live_worker, api, agent, stripe_sandbox, stripe_sandbox_clean):
    pis = [stripe_sandbox.create_payment(10_000) for _ in range(4)]
    for status in (500, 503, 429, 502, 429):
        stripe_sandbox.add_fault(status, count=1, path_prefix="/v1/refunds", methods=["POST"])
    # A request that outlives the client's timeout (3 s in the worker), then goes through.
    stripe_sandbox.add_fault(None, count=1, delay_seconds=4, path_prefix="/v1/refunds", methods=["POST"])

    for i, pi in enumerate(pis):
        assert file_refund(api(agent), pi, f"chaos-f-{i}", 1_000 + i).status_code == 201

    for i, pi in enumerate(pis):
        refund = wait_for_status(f"chaos-f-{i}", RefundStatus.SUCCEEDED, timeout=90)
        assert [r.amount for r in provider_refunds(stripe_sandbox, pi)] == [1_000 + i]
        assert refund.submit_attempts >= 1
    attempts = sum(RefundRequest.objects.filter(merchant_refund_id__startswith="chaos-f-").values_list("submit_attempts", flat=True))
    assert attempts > len(pis)  # the faults were met and retried through
