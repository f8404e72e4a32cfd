"""Robokassa through the real worker: filed through the API, executed and polled to success by
a worker process against the Robokassa emulator over HTTP; and a Create whose outcome is unknown
(Robokassa has no idempotency key) is never sent again: a person decides."""

import pytest

from refunds.models import RefundLog, RefundStatus
from tests.integration.waiting import wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CREATE = "/RefundService/Refund/Create"


def file_refund(client, invoice_id, merchant_refund_id, minor_amount):
    return client.post(
        "/api/refunds/",
        {"merchant_refund_id": merchant_refund_id, "provider": "robokassa", "connector_transaction_id": invoice_id,
         "amount": {"minor_amount": minor_amount, "currency": "RUB"}},
        format="json",
    )


def create_calls(robokassa_sandbox) -> int:
    return robokassa_sandbox.stats()["by_endpoint"].get(f"POST {CREATE}", 0)


def test_the_worker_executes_and_polls_a_robokassa_refund_to_success(live_worker, api, agent, robokassa_sandbox,
                                                                   robokassa_sandbox_clean):
    invoice_id = robokassa_sandbox.create_payment(10_000, behavior="finish")

    filed = file_refund(api(agent), invoice_id, "rk-worker-ok", 2_500)
    assert filed.status_code == 201 and filed.json()["status"] == "approved", filed.json()

    refund = wait_for_status("rk-worker-ok", RefundStatus.SUCCEEDED)
    [request_id] = robokassa_sandbox.payment(invoice_id)["refunds"]
    assert refund.connector_refund_id == request_id and refund.resolved_at is not None
    assert len(refund.logs.filter(event=RefundLog.Event.PROVIDER_CALL)) == 1
    assert api(agent).get("/api/refunds/rk-worker-ok/").json()["status"] == "succeeded"


@pytest.mark.parametrize(
    ("fault", "made"),
    [
        pytest.param({"status": 500, "after": True}, 1, id="answer lost after Robokassa acted"),
        # Longer than the worker's 3 s timeout. The emulator drops the work of a caller that hung
        # up (as a real server may, or may not: the worker cannot tell which, that is the point).
        pytest.param({"status": 500, "after": True, "delay_seconds": 4}, 0, id="timeout on Create"),
    ],
)
def test_an_unknown_outcome_is_never_sent_again(fault, made, live_worker, api, agent, robokassa_sandbox,
                                                robokassa_sandbox_clean):
    invoice_id = robokassa_sandbox.create_payment(10_000, behavior="stay")
    creates_before = create_calls(robokassa_sandbox)
    robokassa_sandbox.set_faults(count=1, path_prefix=CREATE, **fault)

    assert file_refund(api(agent), invoice_id, "rk-worker-lost", 1_000).status_code == 201

    refund = wait_for_status("rk-worker-lost", RefundStatus.NEEDS_ATTENTION)
    assert refund.error_code == "unknown_outcome" and not refund.connector_refund_id
    # The worker called Create once and never again; Robokassa holds what that one call made.
    assert len(robokassa_sandbox.payment(invoice_id)["refunds"]) == made
    assert create_calls(robokassa_sandbox) - creates_before == 1
    assert "cabinet" in refund.error_message  # the person is told where to look
