"""The worker as it ships on PostgreSQL: threads that wait on the provider, sharing a small
pool of database connections (refundoffice/settings.py, refunds/dbconn.py)."""

import threading

import pytest
from django.db import connection

from refunds.models import RefundLog, RefundRequest, RefundStatus
from tests.fixtures.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

THREADS, POOL = 12, 3


def database_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def sessions_opened_since(started) -> int:
    """PostgreSQL sessions on the test database opened since `started` (the worker's: this test
    process's own connection is older, and the sampler's, which asks, is left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND backend_start >= %s AND pid <> pg_backend_pid()",
            [started],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def threaded_worker(celery_worker_process, tmp_path, settings):
    """Not started: the test files its refunds first, then starts it."""
    from refundoffice.celery import app

    if connection.vendor != "postgresql":
        pytest.skip("the connection pool is PostgreSQL's (psycopg_pool); SQLite workers run prefork")
    env = {**celery_worker_process.env, "CELERY_WORKER_POOL": "threads", "DATABASE_POOL_MAX_SIZE": str(POOL)}
    worker = WorkerProcess(env, tmp_path / "threaded.log", tmp_path / "beat", concurrency=THREADS)
    app.control.purge()
    yield worker
    worker.stop()


def most_at_once(intervals) -> int:
    """The most intervals (start, end) open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = most = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def test_slow_provider_calls_overlap_on_a_few_database_connections(threaded_worker, api, agent, stripe_sandbox_clean):
    """24 refunds at a provider answering in 0.5 s, a worker of 12 threads with a pool of 3
    database connections: the threads wait on the provider together (a thread gives its
    connection back before the call), the worker never holds more than its 3 connections, and
    each refund is made exactly once at Stripe."""
    stripe_sandbox = stripe_sandbox_clean
    payments = [stripe_sandbox.create_payment(5_000) for _ in range(24)]
    for i, pi in enumerate(payments):
        body = {"merchant_refund_id": f"thr-{i}", "connector_transaction_id": pi,
                "amount": {"minor_amount": 1_000, "currency": "USD"}}
        assert api(agent).post("/api/refunds/", body, format="json").status_code == 201
    stripe_sandbox.add_fault(None, count=None, delay_seconds=0.5, path_prefix="/v1/refunds", methods=["POST"])
    peak, done = [0], threading.Event()
    started = database_now()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], sessions_opened_since(started))
        connection.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        threaded_worker.start()
        wait_until(
            lambda: RefundRequest.objects.filter(merchant_refund_id__startswith="thr-", status=RefundStatus.SUCCEEDED).count() == 24,
            timeout=60, message="24 refunds succeeded",
        )
    finally:
        done.set()
        sampler.join()

    refunds = RefundRequest.objects.filter(merchant_refund_id__startswith="thr-")
    # From the call's log row (written in the claim's transaction) to the answer's (in the
    # record's): one provider call each. Holding a connection through the call, at most 3 could
    # be in flight (the pool's size); handing it back, the threads wait on Stripe together.
    logged = RefundLog.objects.filter(refund__in=refunds)
    calls = dict(logged.filter(event=RefundLog.Event.PROVIDER_CALL).values_list("refund_id", "created_at"))
    answers = dict(logged.filter(event=RefundLog.Event.PROVIDER_ANSWER).values_list("refund_id", "created_at"))
    assert len(calls) == len(answers) == 24
    assert most_at_once([(calls[pk], answers[pk]) for pk in calls]) >= 2 * POOL
    # The worker's 12 threads share its pool: a connection per thread would be 12.
    assert 1 <= peak[0] <= POOL
    for pi in payments:
        assert len(list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}))) == 1
    assert logged.filter(event=RefundLog.Event.PROVIDER_CALL).count() == 24  # no call was made twice
