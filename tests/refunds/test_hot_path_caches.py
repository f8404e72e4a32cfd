"""What the hot path keeps instead of reading again: a user's permissions in one query
(refunds/auth_backends.py), the Stripe adapter reused per process (refunds/providers) and, on
PostgreSQL, statements prepared once per connection (refundoffice/settings.py)."""

import ast
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.db import connection

from refunds import providers
from refunds.auth_backends import OneQueryModelBackend
from refunds.reports.summary import report_queries


def permission(codename: str) -> Permission:
    return Permission.objects.get(codename=codename)


@pytest.mark.django_db
def test_own_and_group_permissions_come_from_one_query(django_assert_num_queries):
    auditors = Group.objects.create(name="Auditors of refunds")
    auditors.permissions.add(permission("view_refundrequest"))
    others = Group.objects.create(name="Someone else's group")
    others.permissions.add(permission("delete_refundrequest"))
    clerk = User.objects.create_user("clerk")
    clerk.user_permissions.add(permission("add_refundrequest"))
    clerk.groups.add(auditors)
    clerk = User.objects.get(pk=clerk.pk)  # no permission cache yet

    with django_assert_num_queries(1):
        granted = OneQueryModelBackend().get_all_permissions(clerk)
        assert clerk.has_perm("refunds.add_refundrequest")  # the user's own
        assert clerk.has_perm("refunds.view_refundrequest")  # through a group
        assert not clerk.has_perm("refunds.delete_refundrequest")  # another group's

    # Django's own backend (two queries) grants exactly the same.
    assert granted == ModelBackend().get_all_permissions(User.objects.get(pk=clerk.pk))
    assert {"refunds.add_refundrequest", "refunds.view_refundrequest"} <= granted


@pytest.mark.django_db
def test_inactive_users_have_no_permissions_and_superusers_have_all():
    clerk = User.objects.create_user("leaver", is_active=False)
    clerk.user_permissions.add(permission("add_refundrequest"))
    boss = User.objects.create_superuser("boss")

    assert OneQueryModelBackend().get_all_permissions(User.objects.get(pk=clerk.pk)) == set()
    assert len(OneQueryModelBackend().get_all_permissions(boss)) == Permission.objects.count()
    assert OneQueryModelBackend().get_all_permissions(boss, obj=object()) == set()


def test_the_stripe_adapter_is_reused_until_a_setting_changes(settings, monkeypatch):
    first = providers.get_provider("stripe")
    assert providers.get_provider("stripe") is first  # one client and HTTP session per process

    settings.STRIPE_WEBHOOK_SECRET = "whsec_rotated"  # a secret rotated (here: a test's override)
    rebuilt = providers.get_provider("stripe")
    assert rebuilt is not first and rebuilt._webhook_secret == "whsec_rotated"

    # A forked child (another process id) never shares its parent's adapter and sockets.
    monkeypatch.setattr(providers.os, "getpid", lambda: -1)
    assert providers.get_provider("stripe") is not rebuilt


needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's (SQLite has no such setting)"
)

ROOT = Path(__file__).resolve().parents[2]

# In a fresh process against this test database: the replay check intake runs on every request,
# 8 times on one connection, then what that connection has prepared.
REPLAYS_THEN_PREPARED = """
import django; django.setup()
from django.db import connection
from refunds.services.intake import _replay
for n in range(8):
    assert _replay(merchant_refund_id=f"never-filed-{n}", fingerprint="") is None
with connection.cursor() as cursor:
    cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%merchant_refund_id%'")
    print(repr([row[0] for row in cursor.fetchall()]))
"""


def replays_then_prepared(**env) -> list[str]:
    db = connection.settings_dict
    login = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    url = f"postgres://{login}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    # The shell's own DATABASE_PREPARE* settings are left out: each case says its own.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_PREPARE")}
    done = subprocess.run(
        [sys.executable, "-c", REPLAYS_THEN_PREPARED],
        env={**inherited, "DJANGO_SETTINGS_MODULE": "refundoffice.settings", "DATABASE_URL": url, **env},
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])  # the list printed above


@needs_postgresql
@pytest.mark.django_db
def test_with_prepared_statements_a_statement_run_again_and_again_is_prepared_once():
    """DATABASE_PREPARED_STATEMENTS=true: after DATABASE_PREPARE_THRESHOLD (5) runs on one
    connection PostgreSQL keeps the statement parsed and planned, its value a parameter ($1),
    and every run still answers for its own value (the asserts in the script)."""
    prepared = replays_then_prepared(DATABASE_PREPARED_STATEMENTS="true")
    assert len(prepared) == 1, prepared
    assert "merchant_refund_id = $1" in prepared[0] and "never-filed" not in prepared[0]


@needs_postgresql
@pytest.mark.django_db
def test_prepared_statements_are_off_unless_asked_for():
    """Off by default (the reports dashboard is slower with them) and with a higher threshold
    nothing is prepared after 8 runs."""
    assert replays_then_prepared() == []
    assert replays_then_prepared(DATABASE_PREPARED_STATEMENTS="true", DATABASE_PREPARE_THRESHOLD="20") == []


@needs_postgresql
@pytest.mark.django_db(transaction=True)  # no test transaction around it: report_queries' own ends
def test_report_queries_are_planned_for_their_own_range_and_only_they():
    """A statement prepared per connection may get one generic plan for any value after five runs;
    for the dashboard's range aggregates over 1,000,000 refunds that plan was measured slower
    (bench/README.md, "Prepared statements"), so inside report_queries() every query is planned
    for its own values; the setting ends with the reports' transaction."""
    def plan_cache_mode() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW plan_cache_mode")
            return cursor.fetchone()[0]

    with report_queries():
        assert plan_cache_mode() == "force_custom_plan"
    assert plan_cache_mode() == "auto"
