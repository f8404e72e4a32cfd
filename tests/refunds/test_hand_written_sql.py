"""The hot path's hand-written statements (refunds/rows.py) answer what the ORM's did: the API
token with its user, the payment's refund sums with the auto-approved part, the threshold. Each
is checked against the ORM's own answer over rows that differ in every way the query filters on;
the worker's locked read of a refund locks it as select_for_update() does."""

import datetime
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from approvals import policy
from approvals.models import Approval, AutoApproveThreshold
from refunds import rows
from refunds.api.authentication import _digest, _token_with_user, api_token_create
from refunds.models import ApiToken, RefundRequest, RefundStatus
from refunds.services import payments
from tests import factories
from tests.markers import needs_row_locks


def same_fields(loaded, expected) -> None:
    assert type(loaded) is type(expected)
    for field in expected._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(expected, field.attname), field.name


@pytest.mark.django_db
def test_the_token_comes_with_its_user_as_the_orm_loads_them():
    """Dates come back as aware datetimes on SQLite too (it stores them as text): the token's
    "last used" check compares them with now."""
    user = factories.agent(username="agent", first_name="Åsa", last_login=timezone.now())
    key = api_token_create(user=user)
    used = timezone.now() - datetime.timedelta(minutes=5)
    ApiToken.objects.update(last_used_at=used, second_factor_at=used)

    token = _token_with_user(_digest(key))

    same_fields(token, ApiToken.objects.get())
    same_fields(token.user, User.objects.get(pk=user.pk))
    assert token.last_used_at == used and token.last_used_at.tzinfo is not None
    assert token.user_id == user.pk and token.user.username == "agent"


@pytest.mark.django_db
def test_no_token_for_an_unknown_or_revoked_key():
    key = api_token_create(user=factories.agent(username="agent"))
    assert _token_with_user(_digest(key + "x")) is None
    ApiToken.objects.update(revoked=True)
    assert _token_with_user(_digest(key)) is None


@pytest.mark.django_db
def test_the_api_refuses_a_revoked_token_and_takes_a_live_one(client):
    key = api_token_create(user=factories.agent(username="agent"))
    assert client.get("/api/refunds/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    ApiToken.objects.update(revoked=True)
    assert client.get("/api/refunds/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


@pytest.mark.django_db
def test_the_refund_sums_and_the_auto_approved_part_match_the_orms():
    """Every status, sent or not, auto-approved or approved by a person, another currency (a
    payment filed unverified has none), another payment, and a refund left out."""
    payment = factories.PaymentFactory(amount_minor=1_000_000, currency="")
    other = factories.PaymentFactory(amount_minor=1_000_000)
    agent = factories.agent(username="agent")
    made = []
    for n, status in enumerate(RefundStatus.values):
        for sent in (False, True):
            for decision in (Approval.Decision.AUTO_APPROVED, Approval.Decision.APPROVED, None):
                for currency in ("USD", "EUR"):
                    refund = factories.RefundFactory(
                        payment=payment, status=status, currency=currency, amount_minor=100 + n + len(made),
                        connector_refund_id=f"re_{len(made)}" if sent else "", requested_by=agent,
                    )
                    if decision is not None:
                        Approval.objects.create(refund=refund, decision=decision)
                    made.append(refund)
    factories.RefundFactory(payment=other, status=RefundStatus.APPROVED, amount_minor=7, requested_by=agent)
    Approval.objects.create(refund=RefundRequest.objects.get(payment=other), decision=Approval.Decision.AUTO_APPROVED)

    for excluded in (None, made[3].pk):
        counted = RefundRequest.objects.filter(payment=payment, status__in=payments._COUNTED).exclude(pk=excluded)
        expected_not_yet = sum(
            r.amount_minor for r in counted if r.status != RefundStatus.SUCCEEDED and not r.connector_refund_id
        )
        expected_known = sum(r.amount_minor for r in counted if r.connector_refund_id)
        for currency in ("USD", "EUR"):
            sums = payments.payment_refund_sums(
                payment=payment, exclude_refund_id=excluded, auto_approved_currency=currency
            )
            mine = RefundRequest.objects.filter(currency=currency, payment=payment).exclude(pk=excluded)
            assert sums == payments.RefundSums(expected_not_yet, expected_known, policy._auto_approved_minor(mine))
            assert sums.auto_approved > 0 and expected_not_yet > 0 and expected_known > 0
            assert {type(value) for value in vars(sums).values()} == {int}  # not PostgreSQL's Decimal

    assert payments.payment_refund_sums(payment=payment).auto_approved == 0  # not asked for


@pytest.mark.django_db
def test_the_threshold_is_the_rows_else_the_settings(settings):
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"JPY": 700}
    settings.REFUND_AUTO_APPROVE_DEFAULT = 5_000
    AutoApproveThreshold.objects.create(currency="EUR", max_minor_amount=0)
    assert policy.auto_approve_threshold("EUR") == 0  # a row of 0: nothing is approved at once
    assert policy.auto_approve_threshold("JPY") == 700
    assert policy.auto_approve_threshold("USD") == 5_000


@pytest.mark.django_db
def test_a_locked_refund_is_the_row_the_orm_reads():
    refund = factories.RefundFactory(connector_refund_id="re_1", metadata={"ticket": "T-1"})
    with transaction.atomic():
        same_fields(rows.get_locked(RefundRequest, refund.pk), RefundRequest.objects.get(pk=refund.pk))
        with pytest.raises(RefundRequest.DoesNotExist):
            rows.get_locked(RefundRequest, refund.pk + 1000)


@pytest.mark.django_db(transaction=True)  # no test transaction around it
def test_locking_outside_a_transaction_is_refused_as_django_refuses_it():
    refund = factories.RefundFactory()
    with pytest.raises(TransactionManagementError):
        rows.get_locked(RefundRequest, refund.pk)


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_a_locked_refund_stays_locked_until_the_transaction_ends():
    refund = factories.RefundFactory()

    def try_lock() -> str:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT id FROM refunds_refundrequest WHERE id = %s FOR UPDATE NOWAIT", [refund.pk])
            return "free"
        except OperationalError:
            return "locked"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as other:
        with transaction.atomic():
            rows.get_locked(RefundRequest, refund.pk)
            assert other.submit(try_lock).result() == "locked"
        assert other.submit(try_lock).result() == "free"
