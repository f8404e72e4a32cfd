"""Migration 0010 carries the unknown-outcome count over from the log and refuses to drop a
Stripe reason that nobody carried over to STRIPE_REASON_BY_CODE."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("refunds", "0009_dashboard_covering_index"), ("approvals", "0003_approval_queue")]
AFTER = [("refunds", "0010_refund_unconfirmed_calls")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def at_0009(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(executor_leaf_nodes())


def executor_leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_a_custom_stripe_reason_stops_the_migration_with_the_setting_to_add(at_0009, settings):
    ReasonCode = at_0009.get_model("refunds", "ReasonCode")
    ReasonCode.objects.create(code="late_delivery", label="Late delivery", stripe_reason="requested_by_customer")
    ReasonCode.objects.filter(code="fraud").update(stripe_reason="fraudulent")  # the adapter's own: fine
    settings.STRIPE_REASON_BY_CODE = {}

    with pytest.raises(ImproperlyConfigured, match="STRIPE_REASON_BY_CODE=late_delivery=requested_by_customer"):
        migrate(AFTER)

    settings.STRIPE_REASON_BY_CODE = {"late_delivery": "requested_by_customer"}
    apps = migrate(AFTER)
    assert "stripe_reason" not in {f.name for f in apps.get_model("refunds", "ReasonCode")._meta.get_fields()}


def test_unconfirmed_calls_are_counted_from_the_log_since_the_last_check(at_0009):
    User = at_0009.get_model("auth", "User")
    Payment = at_0009.get_model("refunds", "Payment")
    RefundRequest = at_0009.get_model("refunds", "RefundRequest")
    RefundLog = at_0009.get_model("refunds", "RefundLog")
    agent = User.objects.create(username="m-agent")
    payment = Payment.objects.create(provider="robokassa", connector_transaction_id="77")

    def refund(key, status, events):
        row = RefundRequest.objects.create(
            merchant_refund_id=key, provider="robokassa", connector_transaction_id="77", payment=payment,
            amount_minor=100, currency="RUB", status=status, requested_by=agent, request_fingerprint="x",
            idempotency_key=f"k-{key}",
        )
        for event, data in events:
            RefundLog.objects.create(refund=row, event=event, data=data)
        return row.pk

    call, unsent, checked = ("provider_call", {}), ("provider_error", {"not_sent": True}), (
        "status_changed", {"outcome_checked": True})
    two = refund("two", "needs_attention", [call, call])
    one = refund("one", "processing", [call, call, unsent])
    after_check = refund("after-check", "processing", [call, call, checked, call])

    apps = migrate(AFTER)

    counts = dict(apps.get_model("refunds", "RefundRequest").objects.values_list("pk", "unconfirmed_calls"))
    assert (counts[two], counts[one], counts[after_check]) == (2, 1, 1)
