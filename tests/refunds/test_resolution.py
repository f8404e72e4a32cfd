"""A person resolves a refund that needs attention by hand, checked against the Stripe sandbox
over HTTP: what they record is what the provider holds, and the provider can refuse their word."""

import pytest
from django.urls import reverse

from refunds import errors
from refunds.models import RefundLog, RefundStatus
from refunds.money import Money
from refunds.services import intake, resolution
from refunds.services.transitions import refund_flag_for_attention
from tests import factories
from tests.second_factor import force_login_confirmed

pytestmark = pytest.mark.django_db


@pytest.fixture
def stuck_refund(agent, stripe_sandbox):
    """stuck_refund(amount) -> a 20.00 USD refund of a 100.00 USD payment, handed to a person
    because its call's outcome is unknown (nothing recorded from the provider)."""

    def make(amount=2000, *, pi=None):
        pi = pi or stripe_sandbox.create_payment(10_000)
        refund, _ = intake.refund_request_create(
            merchant_refund_id=f"stuck-{pi}-{amount}", provider="stripe", connector_transaction_id=pi,
            amount=Money(amount, "USD"), reason="requested_by_customer", metadata={}, product="Mug",
            requested_by=agent,
        )
        return refund_flag_for_attention(refund_id=refund.pk, message="No answer heard", code="unknown_outcome")

    return make


def refund_at_stripe(stripe_sandbox, refund, *, amount=None, merchant_refund_id=None, payment=None):
    """A refund made at Stripe outside our pipeline (by the lost call, or by someone in the
    dashboard: merchant_refund_id="" leaves our id out of its metadata)."""
    if merchant_refund_id is None:
        merchant_refund_id = refund.merchant_refund_id
    return stripe_sandbox.client().v1.refunds.create(params={
        "payment_intent": payment or refund.connector_transaction_id,
        "amount": amount or refund.amount_minor,
        "metadata": {"merchant_refund_id": merchant_refund_id} if merchant_refund_id else {},
    })


def stripe_refunds(stripe_sandbox, refund):
    return stripe_sandbox.client().v1.refunds.list(params={"payment_intent": refund.connector_transaction_id}).data


def test_found_at_the_provider_records_its_refund_and_follows_its_status(stuck_refund, stripe_sandbox, manager):
    refund = stuck_refund()
    made = refund_at_stripe(stripe_sandbox, refund)

    resolved = resolution.refund_resolve_found(
        refund_id=refund.pk, actor=manager, connector_refund_id=made.id, comment="Found it in the dashboard"
    )

    assert resolved.connector_refund_id == made.id
    expected = {"succeeded": RefundStatus.SUCCEEDED, "pending": RefundStatus.PROCESSING}[made.status]
    assert resolved.status == expected and resolved.error_code == "" and resolved.outcome_checked_at
    note = resolved.logs.get(event=RefundLog.Event.NOTE)
    assert note.actor == manager and "Found it in the dashboard" in note.message and made.id in note.message
    assert [r.id for r in stripe_refunds(stripe_sandbox, refund)] == [made.id]  # nothing sent again


@pytest.mark.parametrize("case", ["unknown_id", "other_payment", "other_amount", "other_refunds_id"])
def test_found_is_refused_when_the_provider_contradicts_it(case, stuck_refund, stripe_sandbox, manager):
    refund = stuck_refund()
    if case == "unknown_id":
        refund_id, expected = "re_doesnotexist", "has no refund re_doesnotexist"
    elif case == "other_payment":
        other = stripe_sandbox.create_payment(10_000)
        refund_id = refund_at_stripe(stripe_sandbox, refund, payment=other).id
        expected = f"it belongs to payment {other}"
    elif case == "other_amount":
        refund_id = refund_at_stripe(stripe_sandbox, refund, amount=1500).id
        expected = "it is 15.00 USD, this refund is 20.00 USD"
    else:
        refund_id = refund_at_stripe(stripe_sandbox, refund, merchant_refund_id="someone-else").id
        expected = "it was made for our refund someone-else"

    with pytest.raises(errors.RefundError) as refused:
        resolution.refund_resolve_found(refund_id=refund.pk, actor=manager, connector_refund_id=refund_id, comment="x")

    assert expected in refused.value.message
    refund.refresh_from_db()
    assert (refund.status, refund.connector_refund_id) == (RefundStatus.NEEDS_ATTENTION, "")
    assert not refund.logs.filter(event=RefundLog.Event.NOTE).exists()


def test_a_provider_refund_is_recorded_on_one_refund_only(stuck_refund, stripe_sandbox, manager):
    first = stuck_refund()
    second = stuck_refund(2500, pi=first.connector_transaction_id)
    made = refund_at_stripe(stripe_sandbox, first, merchant_refund_id="")  # made in the dashboard: no id of ours
    resolution.refund_resolve_found(refund_id=first.pk, actor=manager, connector_refund_id=made.id, comment="ok")
    second.amount_minor = first.amount_minor  # so that only the holder check can refuse
    second.save(update_fields=["amount_minor"])

    with pytest.raises(errors.RefundError, match=f"refund {first.merchant_refund_id} already records it"):
        resolution.refund_resolve_found(refund_id=second.pk, actor=manager, connector_refund_id=made.id, comment="x")

    second.refresh_from_db()
    assert (second.status, second.connector_refund_id) == (RefundStatus.NEEDS_ATTENTION, "")


def test_nothing_refunded_fails_the_refund_with_the_persons_word(stuck_refund, stripe_sandbox, manager):
    refund = stuck_refund()

    failed = resolution.refund_resolve_not_refunded(refund_id=refund.pk, actor=manager, comment="Checked: nothing there")

    assert (failed.status, failed.error_code, failed.unconfirmed_calls) == (
        RefundStatus.FAILED, "resolved_not_refunded", 0,
    )
    last = failed.logs.order_by("-id").first()
    assert last.actor == manager and "Checked: nothing there" in last.message and last.to_status == "failed"
    assert stripe_refunds(stripe_sandbox, refund) == []


def test_nothing_refunded_is_refused_when_the_provider_holds_our_refund(stuck_refund, stripe_sandbox, manager):
    refund = stuck_refund()
    made = refund_at_stripe(stripe_sandbox, refund)

    with pytest.raises(errors.RefundError, match=f"stripe lists {made.id}"):
        resolution.refund_resolve_not_refunded(refund_id=refund.pk, actor=manager, comment="Looked, found nothing")

    refund.refresh_from_db()
    assert refund.status == RefundStatus.NEEDS_ATTENTION


def test_resolving_needs_the_permission_a_comment_and_a_refund_that_needs_attention(
    stuck_refund, stripe_sandbox, manager, agent
):
    refund = stuck_refund()
    with pytest.raises(errors.PermissionDenied):
        resolution.refund_resolve_not_refunded(refund_id=refund.pk, actor=agent, comment="mine")
    with pytest.raises(errors.RefundValidationError, match="comment is required"):
        resolution.refund_resolve_not_refunded(refund_id=refund.pk, actor=manager, comment="   ")
    resolution.refund_resolve_not_refunded(refund_id=refund.pk, actor=manager, comment="nothing there")
    with pytest.raises(errors.InvalidTransition, match="only refunds that need attention"):
        resolution.refund_resolve_not_refunded(refund_id=refund.pk, actor=manager, comment="again")


def test_retry_keeps_the_persons_comment_in_the_log(stuck_refund, manager, client):
    refund = stuck_refund()
    force_login_confirmed(client, manager)

    client.post(
        reverse("admin:refunds_refundrequest_changelist"),
        {"action": "retry_selected", "_selected_action": [refund.pk], "confirm": "yes", "comment": "Stripe was down"},
    )

    refund.refresh_from_db()
    last = refund.logs.order_by("-id").first()
    assert refund.status == RefundStatus.APPROVED
    assert last.actor == manager and last.message.endswith(": Stripe was down")


class TestResolvePage:
    def url(self, refund):
        return reverse("admin:refunds_refundrequest_resolve", args=[refund.pk])

    def test_the_refund_page_links_to_it_and_the_form_records_what_was_found(
        self, stuck_refund, stripe_sandbox, manager, client
    ):
        refund = stuck_refund()
        made = refund_at_stripe(stripe_sandbox, refund)
        force_login_confirmed(client, manager)

        change = client.get(reverse("admin:refunds_refundrequest_change", args=[refund.pk]))
        assert self.url(refund).encode() in change.content and b"Resolve by hand" in change.content
        done = client.post(
            self.url(refund),
            {"outcome": "found", "connector_refund_id": made.id, "comment": "In the dashboard"},
            follow=True,
        )

        refund.refresh_from_db()
        assert refund.connector_refund_id == made.id
        assert f"Refund {refund.merchant_refund_id}: " in " ".join(str(m) for m in done.context["messages"])

    @pytest.mark.parametrize(
        "post, field, text",
        [
            ({"connector_refund_id": "re_1", "comment": "x"}, "outcome", "This field is required"),
            ({"outcome": "found", "comment": "x"}, "connector_refund_id", "Enter the refund id you found"),
            ({"outcome": "not_refunded", "connector_refund_id": "re_1", "comment": "x"}, "connector_refund_id",
             "choose the first option"),
            ({"outcome": "not_refunded", "comment": ""}, "comment", "This field is required"),
        ],
    )
    def test_a_wrong_choice_is_a_form_error_and_changes_nothing(
        self, post, field, text, stuck_refund, manager, client
    ):
        refund = stuck_refund()
        force_login_confirmed(client, manager)

        page = client.post(self.url(refund), post)

        assert page.status_code == 200
        assert text in " ".join(page.context["form"].errors[field])
        refund.refresh_from_db()
        assert refund.status == RefundStatus.NEEDS_ATTENTION

    def test_the_providers_refusal_is_shown_on_the_form(self, stuck_refund, manager, client):
        refund = stuck_refund()
        force_login_confirmed(client, manager)

        page = client.post(self.url(refund), {"outcome": "found", "connector_refund_id": "re_nope", "comment": "x"})

        assert "stripe has no refund re_nope" in page.content.decode()

    def test_agents_may_not_and_a_finished_refund_is_not_resolvable(self, stuck_refund, manager, client):
        refund = stuck_refund()
        agent = factories.agent(username="agent-2")
        client.force_login(agent)
        assert client.get(self.url(refund)).status_code == 403

        resolution.refund_resolve_not_refunded(refund_id=refund.pk, actor=manager, comment="nothing there")
        force_login_confirmed(client, manager)
        page = client.get(self.url(refund))
        assert b'data-testid="not-resolvable"' in page.content
        assert client.post(self.url(refund), {"outcome": "found", "connector_refund_id": "re_1", "comment": "x"}).status_code == 200
        refund.refresh_from_db()
        assert (refund.status, refund.connector_refund_id) == (RefundStatus.FAILED, "")
