"""The hot path's hand-written statements (refunds/rows.py) answer what the ORM's did: the API
token with its user, the payment's refund sums with the auto-approved part, the threshold. Each
is checked against the ORM's own answer over rows that differ in every way the query filters on;
the worker's locked read of a refund locks it as select_for_update() does; its writes (a refund's
fields, its log rows, the payment's refunded figure) leave the rows the ORM's writes left."""

import datetime
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import F, Q, signals
from django.db.models.functions import Least
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import policy
from approvals.models import Approval, AutoApproveThreshold
from refunds import rows
from refunds.api.authentication import _digest, _token_with_user, api_token_create
from refunds.models import ApiToken, Payment, RefundLog, RefundRequest, RefundStatus
from refunds.services import payments, transitions
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
@pytest.mark.parametrize("kind", ["own and group permissions", "none", "a superuser", "inactive"])
def test_the_token_brings_its_users_permissions_as_djangos_backend_grants_them(kind):
    """Read in the token's own statement: the permission checks that follow send none, and grant
    what Django's ModelBackend grants (a user's own permissions and their groups')."""
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import Group, Permission

    user = User.objects.create_user("clerk", is_superuser=kind == "a superuser", is_active=kind != "inactive")
    auditors = Group.objects.create(name="Auditors")
    others = Group.objects.create(name="Others")
    others.permissions.add(Permission.objects.get(codename="delete_refundrequest"))
    if kind != "none":
        user.user_permissions.add(Permission.objects.get(codename="add_refundrequest"))
        auditors.permissions.add(*Permission.objects.filter(codename__in=["view_refundrequest", "view_refundlog"]))
        user.groups.add(auditors)
    key = api_token_create(user=user)
    asked = ["refunds.add_refundrequest", "refunds.view_refundrequest", "refunds.view_refundlog",
             "refunds.delete_refundrequest", "approvals.add_approval"]

    with CaptureQueriesContext(connection) as queries:
        token = _token_with_user(_digest(key))
        granted = [perm for perm in asked if token.user.has_perm(perm)]

    assert len(queries) == 1
    fresh = User.objects.get(pk=user.pk)
    assert granted == [perm for perm in asked if fresh.has_perm(perm)]
    assert token.user.get_all_permissions() == ModelBackend().get_all_permissions(User.objects.get(pk=user.pk))
    expected = {"none": [], "inactive": [], "a superuser": asked}.get(kind, asked[:3])
    assert granted == expected


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


@pytest.mark.django_db
def test_a_refund_read_without_a_lock_is_the_row_the_orm_reads():
    refund = factories.RefundFactory(connector_refund_id="re_2", items=[{"name": "Mug"}], submitted_at=timezone.now())
    same_fields(rows.get(RefundRequest, refund.pk), RefundRequest.objects.get(pk=refund.pk))
    assert rows.get(RefundRequest, refund.pk).submitted_at.tzinfo is not None
    with pytest.raises(RefundRequest.DoesNotExist):
        rows.get(RefundRequest, refund.pk + 1000)


@pytest.mark.django_db
def test_log_rows_inserted_together_read_back_as_given_in_order():
    """One INSERT with a VALUES row each (not PostgreSQL's UNNEST arrays, which psycopg quotes
    element by element): ids in order, `created_at` stamped, JSON, actors and blanks kept."""
    refund = factories.RefundFactory()
    manager = factories.manager(username="manager")
    made = [
        transitions.refund_log_row(refund=refund, event=RefundLog.Event.NOTE, message="first", data={"n": [1, "ü"]}),
        transitions.refund_log_row(refund=refund, event=RefundLog.Event.STATUS_CHANGED, from_status="approved",
                                   to_status="processing", actor=manager),
        transitions.refund_log_row(refund=refund, event=RefundLog.Event.NOTE, message="it's 'quoted' \\ too"),
    ]

    with CaptureQueriesContext(connection) as queries:
        rows.insert_all(RefundLog, made)

    assert len(queries) == 1 and "UNNEST" not in queries[0]["sql"].upper()
    assert [row.pk for row in made] == sorted(row.pk for row in made) and all(not row._state.adding for row in made)
    for row in made:
        same_fields(RefundLog.objects.get(pk=row.pk), row)
        assert row.created_at is not None
    assert list(RefundLog.objects.filter(refund=refund).order_by("pk").values_list("message", flat=True)) == [
        "first", "", "it's 'quoted' \\ too"
    ]
    assert rows.insert_all(RefundLog, []) == []


@pytest.mark.django_db
def test_a_refunds_fields_written_out_are_what_save_writes():
    """The named fields only (a field changed in memory but not named stays as stored),
    `updated_at` stamped, the signals sent as save(update_fields=…) sends them."""
    by_orm, by_rows = factories.RefundFactory(), factories.RefundFactory()
    before = RefundRequest.objects.get(pk=by_rows.pk).updated_at
    sent = []
    def keep(signal):
        return lambda sender, instance, update_fields, **kw: sent.append((signal, instance.pk, update_fields))
    pre, post = keep("pre"), keep("post")
    signals.pre_save.connect(pre, sender=RefundRequest)
    signals.post_save.connect(post, sender=RefundRequest)
    try:
        for refund, write in ((by_orm, lambda r, names: r.save(update_fields=names)), (by_rows, rows.update)):
            refund.status, refund.error_code, refund.submitted_at = RefundStatus.PROCESSING, "x" * 64, timezone.now()
            refund.reason = "changed in memory, not named"
            write(refund, ["status", "updated_at", "error_code", "submitted_at", "payment"])
    finally:
        signals.pre_save.disconnect(pre, sender=RefundRequest)
        signals.post_save.disconnect(post, sender=RefundRequest)

    names = frozenset({"status", "updated_at", "error_code", "submitted_at", "payment"})
    assert sent == [("pre", by_orm.pk, names), ("post", by_orm.pk, names),
                    ("pre", by_rows.pk, names), ("post", by_rows.pk, names)]
    stored = RefundRequest.objects.get(pk=by_rows.pk)
    assert (stored.status, stored.error_code, stored.submitted_at) == (
        RefundStatus.PROCESSING, "x" * 64, by_rows.submitted_at
    )
    assert stored.reason == RefundRequest.objects.get(pk=by_orm.pk).reason == ""
    assert stored.updated_at == by_rows.updated_at > before
    gone = factories.RefundFactory()
    RefundRequest.objects.filter(pk=gone.pk).delete()
    with pytest.raises(DatabaseError):
        rows.update(gone, ["status"])


@pytest.mark.django_db
def test_a_succeeded_refund_counts_on_its_payment_as_the_orms_update_counted():
    """Against the ORM's statement it replaced, over payments synced before, after and never,
    with and without an amount, and a refund that would pass the payment's amount."""
    now = timezone.now()
    earlier, later = now - datetime.timedelta(minutes=5), now + datetime.timedelta(minutes=5)
    cases = [(10_000, 1_000, None, 2_000), (10_000, 1_000, earlier, 2_000), (10_000, 1_000, later, 2_000),
             (None, 0, None, 2_000), (10_000, 9_000, None, 2_500), (10_000, 0, now, 2_000)]

    def orm(refund):
        Payment.objects.filter(pk=refund.payment_id, amount_minor__isnull=False).filter(
            Q(synced_at__isnull=True) | Q(synced_at__lt=refund.submitted_at)
        ).update(amount_refunded_minor=Least(F("amount_refunded_minor") + refund.amount_minor, F("amount_minor")))

    for count, side in ((orm, "orm"), (payments.payment_count_refund_succeeded, "rows")):
        for n, (amount, refunded, synced, minor) in enumerate(cases):
            payment = factories.PaymentFactory(
                connector_transaction_id=f"pi_{side}_{n}", amount_minor=amount, amount_refunded_minor=refunded,
                synced_at=synced,
            )
            count(refund=factories.RefundFactory(payment=payment, amount_minor=minor, submitted_at=now))

    def figures(side):
        return [Payment.objects.get(connector_transaction_id=f"pi_{side}_{n}").amount_refunded_minor
                for n in range(len(cases))]
    assert figures("rows") == figures("orm") == [3_000, 3_000, 1_000, 0, 10_000, 0]
