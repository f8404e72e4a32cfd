"""Hyperswitch Prism through the real worker: a refund filed through the API with provider
prism_stripe is executed by a worker process through Prism's SDK against the Stripe sandbox, and
exists there exactly once, also when Stripe's answer to the create call is lost (Prism sends no
idempotency key: the worker must look before it sends again)."""

import pytest

from refunds.models import RefundLog, RefundRequest, RefundStatus
from tests.fixtures.prism import prism_sdk_or_skip
from tests.fixtures.worker import wait_until
from tests.integration.waiting import status_of, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _prism_enabled(settings):
    prism_sdk_or_skip()
    settings.REFUND_PROVIDERS = [*settings.REFUND_PROVIDERS, "prism_stripe"]


def file_refund(client, pi, merchant_refund_id, minor_amount):
    return client.post(
        "/api/refunds/",
        {"merchant_refund_id": merchant_refund_id, "provider": "prism_stripe", "connector_transaction_id": pi,
         "amount": {"minor_amount": minor_amount, "currency": "USD"}},
        format="json",
    )


def sandbox_refunds(stripe_sandbox, pi):
    return list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).auto_paging_iter())


def test_the_worker_executes_a_prism_refund_once(live_worker, api, agent, stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(10_000)

    filed = file_refund(api(agent), pi, "prism-worker-ok", 2_500)
    assert filed.status_code == 201 and filed.json()["status"] == "approved", filed.json()

    refund = wait_for_status("prism-worker-ok", RefundStatus.SUCCEEDED)
    [made] = sandbox_refunds(stripe_sandbox, pi)
    assert (made.id, made.amount, made.status) == (refund.connector_refund_id, 2_500, "succeeded")
    assert made.metadata.to_dict().get("order_id") == "prism-worker-ok"  # how Prism passes our id
    assert len(refund.logs.filter(event=RefundLog.Event.PROVIDER_CALL)) == 1
    assert api(agent).get("/api/refunds/prism-worker-ok/").json()["status"] == "succeeded"


def test_a_lost_answer_is_not_sent_again(live_worker, api, agent, stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(10_000)
    faults_before = stripe_sandbox.stats()["faults_injected"]
    # Stripe makes the refund, then its answer is lost (a 500 instead).
    stripe_sandbox.set_faults(500, count=1, path_prefix="/v1/refunds", methods=["POST"], after=True)

    assert file_refund(api(agent), pi, "prism-worker-lost", 1_000).status_code == 201

    wait_until(lambda: status_of("prism-worker-lost") in {RefundStatus.SUCCEEDED, RefundStatus.NEEDS_ATTENTION},
               timeout=60, message="the lost answer to be resolved")
    refund = RefundRequest.objects.get(merchant_refund_id="prism-worker-lost")
    assert stripe_sandbox.stats()["faults_injected"] == faults_before + 1
    [made] = sandbox_refunds(stripe_sandbox, pi)
    assert made.amount == 1_000
    # Found by its merchant_refund_id (Prism's metadata[order_id]) instead of sent again.
    assert (refund.status, refund.connector_refund_id) == (RefundStatus.SUCCEEDED, made.id)
