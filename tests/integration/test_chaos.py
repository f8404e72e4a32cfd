"""Faults injected for real: concurrent humans, duplicated and redelivered tasks, a worker
killed mid-refund, a payment raced by partial refunds, the broker gone, the provider failing.
Each asserts exactly one provider refund per request and the right final state."""

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.services import execution
from refunds.tasks import refund_submit_task
from tests import factories
from tests.fixtures.worker import FAST_CLOCKS, WorkerProcess, wait_until
from tests.integration.waiting import wait_for_status
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


def stripe_counters(stripe_sandbox) -> dict:
    """The sandbox's own counts: refunds created, idempotent replays, 429s, faults, create calls."""
    stats = stripe_sandbox.stats()
    return {
        **{name: stats[name] for name in ("refunds_created", "idempotent_replays", "responses_429", "faults_injected")},
        "create_calls": sum(stats["requests"].get("POST /v1/refunds", {}).values()),
    }


def since(stripe_sandbox, before: dict) -> dict:
    after = stripe_counters(stripe_sandbox)
    return {name: after[name] - before[name] for name in before}


def logged(refund, event):
    return list(refund.logs.filter(event=event).order_by("pk"))


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
    before = stripe_counters(stripe_sandbox)

    responses = threaded(lambda client: client.post("/api/refunds/chaos-a/approve/", {}, format="json"), clients)

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 19
    refund = wait_for_status("chaos-a", RefundStatus.SUCCEEDED)
    assert refund.approvals.count() == 1
    approved = [log for log in logged(refund, RefundLog.Event.STATUS_CHANGED) if log.to_status == RefundStatus.APPROVED]
    assert len(approved) == 1 and len(logged(refund, RefundLog.Event.PROVIDER_CALL)) == 1
    # The provider saw one create call and made one refund.
    assert [r.amount for r in provider_refunds(stripe_sandbox, pi)] == [60_000]
    assert (since(stripe_sandbox, before)["create_calls"], since(stripe_sandbox, before)["refunds_created"]) == (1, 1)


def test_b_execute_task_delivered_five_times(live_worker, api, agent, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(100_000)
    file_refund(api(agent), pi, "chaos-b", 70_000)
    refund = RefundRequest.objects.get(merchant_refund_id="chaos-b")
    before = stripe_counters(stripe_sandbox)
    api(manager).post("/api/refunds/chaos-b/approve/", {}, format="json")  # publishes one submit task itself

    deliveries = [refund_submit_task.delay(refund.pk).id for _ in range(5)]

    # Every one of the five deliveries has been run to its end by the worker...
    outcomes = live_worker.wait_for_tasks(deliveries, timeout=90)
    assert set(outcomes.values()) == {"succeeded"}, outcomes
    refund = wait_for_status("chaos-b", RefundStatus.SUCCEEDED)
    # ...and the provider was asked to refund once: one create call, one refund.
    [only] = provider_refunds(stripe_sandbox, pi)
    assert (only.id, only.amount) == (refund.connector_refund_id, 70_000)
    assert (since(stripe_sandbox, before)["create_calls"], since(stripe_sandbox, before)["refunds_created"]) == (1, 1)
    [call] = logged(refund, RefundLog.Event.PROVIDER_CALL)
    assert call.data == {"idempotency_key": refund.idempotency_key, "attempt": 1}
    assert refund.submit_attempts == 1


def test_c_worker_killed_right_after_the_provider_call(live_worker, api, agent, stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(10_000)
    # Stripe makes the refund, then the answer hangs: the worker dies before it can commit.
    stripe_sandbox.set_faults(status=500, count=1, after=True, delay_seconds=30, path_prefix="/v1/refunds", methods=["POST"])
    before = stripe_counters(stripe_sandbox)
    file_refund(api(agent), pi, "chaos-c", 2_000)
    wait_until(lambda: since(stripe_sandbox, before)["refunds_created"] == 1, message="the provider to act")

    live_worker.kill()
    stripe_sandbox.clear_faults()
    assert RefundRequest.objects.get(merchant_refund_id="chaos-c").connector_refund_id == ""
    live_worker.start()

    refund = wait_for_status("chaos-c", RefundStatus.SUCCEEDED)
    [only] = provider_refunds(stripe_sandbox, pi)
    assert only.id == refund.connector_refund_id
    # After the lease the refund was submitted again with the same key, and Stripe replayed
    # its refund instead of making a second one.
    calls = logged(refund, RefundLog.Event.PROVIDER_CALL)
    assert len(calls) >= 2 and {c.data["idempotency_key"] for c in calls} == {refund.idempotency_key}
    counted = since(stripe_sandbox, before)
    assert counted["refunds_created"] == 1 and counted["idempotent_replays"] >= 1


@needs_row_locks
def test_d_concurrent_partial_refunds_beyond_the_payment(live_worker, api, agent, stripe_sandbox, settings):
    # What fits is auto-approved and sent: the threshold bounds the sum auto-approved on a
    # payment, so it must cover the three that fit (intake runs in this process).
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"USD": 10_000}
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    before = stripe_counters(stripe_sandbox)

    responses = threaded(lambda i: file_refund(client, pi, f"chaos-d-{i}", 3_000), range(8), workers=8)

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [422] * 5
    accepted = {r.json()["merchant_refund_id"] for r in responses if r.status_code == 201}
    for merchant_refund_id in accepted:
        wait_for_status(merchant_refund_id, RefundStatus.SUCCEEDED)
    # What did not fit was never stored, so never sent: three create calls, three refunds.
    assert set(RefundRequest.objects.filter(merchant_refund_id__startswith="chaos-d-").values_list(
        "merchant_refund_id", flat=True)) == accepted
    assert sorted(r.amount for r in provider_refunds(stripe_sandbox, pi)) == [3_000] * 3
    assert (since(stripe_sandbox, before)["create_calls"], since(stripe_sandbox, before)["refunds_created"]) == (3, 3)


@pytest.fixture
def broker_on_own_redis(own_redis, celery_worker_process, settings):
    """This test's web side and a worker of its own both use `own_redis` as broker and cache,
    as a deployment with REDIS_URL does; the shared Redis is never touched."""
    from refundoffice.celery import app

    for name, value in FAST_CLOCKS.items():
        setattr(settings, name, value)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": own_redis.url}}
    saved = (app.conf.broker_url, app.conf.broker_transport_options)

    def use_broker(url, options):
        app.conf.broker_url, app.conf.broker_transport_options = url, options
        app.amqp._producer_pool = None  # pools are keyed by the connection: start afresh
        app._pool = None

    use_broker(own_redis.url, {"visibility_timeout": 3600})
    workdir = celery_worker_process.log_path.parent
    worker = WorkerProcess(
        {**celery_worker_process.env, "CELERY_BROKER_URL": own_redis.url, "REDIS_URL": own_redis.url},
        workdir / "worker-own-redis.log", workdir / "beat-schedule-own-redis",
    )
    worker.start()
    yield worker
    worker.stop()
    use_broker(*saved)


def test_e_redis_stopped_during_intake(broker_on_own_redis, own_redis, api, agent, manager, stripe_sandbox, caplog):
    pi = stripe_sandbox.create_payment(100_000)
    own_redis.stop()
    assert not own_redis.is_up()  # really down: ping fails

    with caplog.at_level(logging.WARNING, logger="refunds.publish"):
        small = file_refund(api(agent), pi, "chaos-e-small", 1_000)
        big = file_refund(api(agent), pi, "chaos-e-big", 9_000)
        approved = api(manager).post("/api/refunds/chaos-e-big/approve/", {}, format="json")
    # The database is the source of truth: intake and approval succeed without the broker...
    assert (small.status_code, big.status_code, approved.status_code) == (201, 201, 200)
    assert small.json()["status"] == "approved" and approved.json()["status"] == "approved"
    # ...though the submit tasks could not be published, and nothing reached the provider.
    unpublished = [r.getMessage() for r in caplog.records if "could not enqueue refund_submit_task" in r.getMessage()]
    assert len(unpublished) == 2, unpublished
    # Asked of this payment at the sandbox and of the two refunds' logs, not of the sandbox's
    # session-wide counters, which other tests' lingering workers may move meanwhile.
    assert provider_refunds(stripe_sandbox, pi) == []
    for merchant_refund_id in ("chaos-e-small", "chaos-e-big"):
        refund = RefundRequest.objects.get(merchant_refund_id=merchant_refund_id)
        assert logged(refund, RefundLog.Event.PROVIDER_CALL) == []

    own_redis.start()
    assert own_redis.is_up()

    # The dispatcher sends the work once Redis is back: each refund made once at the provider.
    small_refund = wait_for_status("chaos-e-small", RefundStatus.SUCCEEDED, timeout=120)
    big_refund = wait_for_status("chaos-e-big", RefundStatus.SUCCEEDED, timeout=120)
    assert sorted(r.amount for r in provider_refunds(stripe_sandbox, pi)) == [1_000, 9_000]  # exactly two
    for refund in (small_refund, big_refund):
        assert len(logged(refund, RefundLog.Event.PROVIDER_CALL)) == 1
    assert "dispatched {'submit'" in broker_on_own_redis.log_text()


def test_f_provider_failing_for_a_while(live_worker, api, agent, manager, stripe_sandbox, stripe_sandbox_clean, slack):
    pi = stripe_sandbox.create_payment(10_000)
    for status in (500, 503, 429, 502, 429):
        stripe_sandbox.add_fault(status, count=1, path_prefix="/v1/refunds", methods=["POST"])
    # A request that outlives the client's timeout (3 s in the worker), then goes through.
    stripe_sandbox.add_fault(None, count=1, delay_seconds=4, path_prefix="/v1/refunds", methods=["POST"])
    before = stripe_counters(stripe_sandbox)

    assert file_refund(api(agent), pi, "chaos-f", 1_000).status_code == 201

    refund = wait_for_status("chaos-f", RefundStatus.SUCCEEDED, timeout=120)
    assert [r.amount for r in provider_refunds(stripe_sandbox, pi)] == [1_000]
    counted = since(stripe_sandbox, before)
    assert (counted["faults_injected"], counted["responses_429"], counted["refunds_created"]) == (6, 2, 1)
    # Seven calls, each logged; the two 429s cost no attempt: 7 calls, 5 attempts.
    calls = logged(refund, RefundLog.Event.PROVIDER_CALL)
    assert len(calls) == 7
    assert [c.data["attempt"] for c in calls] == [1, 2, 3, 3, 4, 4, 5]
    assert refund.submit_attempts == 5
    errors = logged(refund, RefundLog.Event.PROVIDER_ERROR)
    throttled = [e for e in errors if e.message.startswith("Provider rate limit (429)")]
    failed = [e for e in errors if e.message.startswith("Attempt ")]
    assert (len(throttled), len(failed), len(errors)) == (2, 4, 6)
    assert all(e.data["code"] == "rate_limit" and e.data["retry_in"] >= 1 for e in throttled)
    assert [e.message.split(" failed")[0] for e in failed] == ["Attempt 1", "Attempt 2", "Attempt 3", "Attempt 4"]


def test_f_provider_failing_past_the_attempts(live_worker, api, agent, manager, stripe_sandbox, stripe_sandbox_clean,
                                              slack, settings):
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.set_faults(503, count=None, path_prefix="/v1/refunds", methods=["POST"])  # down for good
    before = stripe_counters(stripe_sandbox)

    assert file_refund(api(agent), pi, "chaos-f-out", 1_500).status_code == 201

    refund = wait_for_status("chaos-f-out", RefundStatus.NEEDS_ATTENTION, timeout=120)
    budget = settings.REFUND_SUBMIT_MAX_ATTEMPTS
    assert refund.submit_attempts == budget and refund.error_message.startswith(f"stripe kept failing after {budget}")
    calls = logged(refund, RefundLog.Event.PROVIDER_CALL)
    assert [c.data["attempt"] for c in calls] == list(range(1, budget + 1))  # every attempt logged
    assert logged(refund, RefundLog.Event.PROVIDER_ERROR)[-1].message.startswith(f"Attempt {budget} failed, no attempts left")
    assert since(stripe_sandbox, before)["create_calls"] == budget
    assert provider_refunds(stripe_sandbox, pi) == []
    # A person hears of it in Slack...
    alert = slack.wait_for(lambda m: "needs attention" in m["text"] and "chaos-f-out" in m["text"], timeout=30)
    assert f"kept failing after {budget} attempts" in alert["blocks"][1]["text"]["text"]

    # ...and once Stripe is back, the admin's Retry sends it, once.
    stripe_sandbox.clear_faults()
    execution.refund_retry(refund_id=refund.pk, actor=manager)
    refund = wait_for_status("chaos-f-out", RefundStatus.SUCCEEDED, timeout=60)
    [only] = provider_refunds(stripe_sandbox, pi)
    assert (only.id, only.amount) == (refund.connector_refund_id, 1_500)
