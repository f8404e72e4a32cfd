"""The reports dashboard and the daily summary over 1,000,000 refunds in PostgreSQL.

Run by hand (not a test):  .venv/bin/python bench/reports.py [--refunds 1000000] [--sales 2000000] [--requests 30]
                           [--keep-data] [--skip-summary]

Uses its own database (refundoffice_bench_reports, dropped and re-created), fills it with SQL
(generate_series): refunds spread over a year with the statuses, resolution and approval
times a real pipeline leaves (pending only in the last days, a few stuck for longer), their
payments and approvals, and sales for the refund rate. The business zone is Europe/Berlin.
Then times each page in-process through Django's test client as an accountant (the server's
time: view, SQL, template) and counts its SQL queries; the slowest query of each page is
reported too. Prints JSON and a markdown table.
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _pages import reset_database, setup_django  # noqa: E402  (bench/ is sys.path[0])
DB = "refundoffice_bench_reports"
TIME_ZONE = "Europe/Berlin"
YEAR_SECONDS = 365 * 24 * 3600


def users():
    from tests import factories

    return factories.agent(username="bench-agent"), factories.manager(username="bench-manager"), factories.accountant(
        username="bench-accountant"
    )


# Statuses as a working pipeline leaves them: pending approval and processing only recently
# (plus one in 5,000 stuck in the queue for longer), the rest final or needing attention.
REFUNDS_SQL = """
WITH s AS (
    SELECT g, now() - make_interval(secs => mod(g::bigint * 7919, %(year)s)) AS c
    FROM generate_series(1, %(n)s) AS g
), t AS (
    SELECT g, c,
        CASE
            WHEN mod(g, 5000) = 0 THEN 'pending_approval'
            WHEN c > now() - interval '3 days' AND mod(g, 10) < 3 THEN 'pending_approval'
            WHEN c > now() - interval '1 day' AND mod(g, 10) = 3 THEN 'processing'
            WHEN mod(g, 100) < 80 THEN 'succeeded'
            WHEN mod(g, 100) < 86 THEN 'rejected'
            WHEN mod(g, 100) < 92 THEN 'failed'
            WHEN mod(g, 100) < 96 THEN 'canceled'
            WHEN mod(g, 100) < 97 THEN 'needs_attention'
            ELSE 'succeeded'
        END AS status
    FROM s
)
INSERT INTO refunds_refundrequest (
    id, merchant_refund_id, provider, connector_transaction_id, payment_id, amount_minor, currency,
    reason, metadata, product, status, requested_by_id, request_fingerprint, idempotency_key,
    payment_verified, origin, connector_refund_id, provider_status, error_code, error_message,
    created_at, updated_at, approved_at, resolved_at, submit_attempts, poll_count, items, dispute_overridden)
SELECT row_number() OVER (ORDER BY c), 'bench-' || g, 'stripe', 'pi_bench' || (g / 5 + 1), g / 5 + 1, 100 + mod(g::bigint * 7919, 90000),
       (ARRAY['USD','USD','EUR','GBP','JPY'])[1 + mod(g / 5 + 1, 5)], 'Bench refund', '{}',
       'Product ' || lpad((mod(g, 7) * mod(g, 11))::text, 2, '0'), status, %(agent)s, '', 'bench-key-' || g,
       true, 'app', CASE WHEN status IN ('succeeded', 'processing') THEN 're_bench' || g ELSE '' END, '',
       CASE WHEN status = 'failed' THEN 'card_declined' ELSE '' END, '',
       c, c,
       CASE WHEN status IN ('pending_approval', 'rejected') THEN NULL
            ELSE LEAST(now(), c + make_interval(secs => 60 + mod(g::bigint * 13, 7200))) END,
       CASE WHEN status IN ('succeeded', 'failed', 'rejected', 'canceled')
            THEN LEAST(now(), c + make_interval(secs => 600 + mod(g::bigint * 31, 259200))) END,
       1, 0, '[]', ''
FROM t
ORDER BY c  -- a refund table grows in time order: ids and heap pages follow created_at
"""

PAYMENTS_SQL = """
INSERT INTO refunds_payment (id, provider, connector_transaction_id, amount_minor, currency,
                             amount_refunded_minor, status, product, customer, synced_at, created_at,
                             dispute_id, dispute_state, dispute_status, dispute_reason)
SELECT p, 'stripe', 'pi_bench' || p, 100000, (ARRAY['USD','USD','EUR','GBP','JPY'])[1 + mod(p, 5)], 0,
       'succeeded', '', '', now(), now(), '', '', '', ''
FROM generate_series(1, %(n)s / 5 + 1) AS p
"""

APPROVALS_SQL = """
INSERT INTO approvals_approval (refund_id, approver_id, decision, comment, tier, limit_minor, created_at)
SELECT id,
       CASE WHEN amount_minor < 5000 AND status <> 'rejected' THEN NULL ELSE %(manager)s END,
       CASE WHEN status = 'rejected' THEN 'rejected' WHEN amount_minor < 5000 THEN 'auto_approved' ELSE 'approved' END,
       '', 1, NULL, COALESCE(approved_at, resolved_at)
FROM refunds_refundrequest
WHERE approved_at IS NOT NULL OR status = 'rejected'
"""

SALES_SQL = """
INSERT INTO refunds_sale (id, source, external_id, product, amount_minor, currency, sold_at, import_batch, created_at)
SELECT s, CASE WHEN mod(s, 10) = 0 THEN 'import' ELSE 'stripe' END, 'sale-' || s,
       'Product ' || lpad((mod(s, 7) * mod(s * 3, 11))::text, 2, '0'), 1000 + mod(s::bigint * 104729, 200000),
       (ARRAY['USD','USD','EUR','GBP','JPY'])[1 + mod(s / 3, 5)],
       now() - make_interval(secs => mod(s::bigint * 6007, %(year)s)), '', now()
FROM generate_series(1, %(n)s) AS s
"""


def fill(*, refunds: int, sales: int, agent_id: int, manager_id: int) -> dict:
    from django.db import connection

    timings = {}
    with connection.cursor() as cursor:
        for name, sql, params in [
            ("payments", PAYMENTS_SQL, {"n": refunds}),
            ("refunds", REFUNDS_SQL, {"n": refunds, "year": YEAR_SECONDS, "agent": agent_id}),
            ("approvals", APPROVALS_SQL, {"manager": manager_id}),
            ("sales", SALES_SQL, {"n": sales, "year": YEAR_SECONDS}),
        ]:
            started = time.perf_counter()
            cursor.execute(sql, params)
            timings[name] = round(time.perf_counter() - started, 1)
            print(f"{name}: {cursor.rowcount} rows in {timings[name]}s", file=sys.stderr, flush=True)
        for table in ("refunds_payment", "refunds_refundrequest", "approvals_approval", "refunds_sale"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )
        started = time.perf_counter()
        cursor.execute("VACUUM ANALYZE refunds_payment, refunds_refundrequest, approvals_approval, refunds_sale")
        timings["vacuum_analyze"] = round(time.perf_counter() - started, 1)
        cursor.execute("SELECT status, count(*) FROM refunds_refundrequest GROUP BY status ORDER BY 2 DESC")
        timings["statuses"] = dict(cursor.fetchall())
    return timings


def measure(client, url: str, requests: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    # Read now: the next request's request_started signal empties the query log.
    query_count = len(queries)
    slowest = max(queries.captured_queries, key=lambda q: float(q["time"]), default=None)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "max_ms": round(times[-1], 1),
        "queries": query_count,
        "slowest_query_ms": round(float(slowest["time"]) * 1000, 1) if slowest else None,
        "slowest_query": slowest["sql"][:300] if slowest else None,
    }


# Long: a benchmark script's main reads as the run it performs, step by step.
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refunds", type=int, default=1_000_000)
    parser.add_argument("--sales", type=int, default=2_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--skip-summary", action="store_true", help="bench the dashboard alone")
    parser.add_argument(
        "--keep-data", action="store_true",
        help="measure again on the database a previous run filled (no drop, no load; migrations still run)",
    )
    args = parser.parse_args()

    if not args.keep_data:
        reset_database(DB)
    setup_django(DB, REPORTS_TIME_ZONE=TIME_ZONE)
    # Imported after setup_django(): the app's modules need its settings.
    from django.test import Client

    from refunds.reports.calendar import business_today

    agent, manager, accountant = users()
    if args.keep_data:
        load = {"kept": True}
    else:
        started = time.perf_counter()
        load = fill(refunds=args.refunds, sales=args.sales, agent_id=agent.pk, manager_id=manager.pk)
        load["total_s"] = round(time.perf_counter() - started, 1)

    client = Client()
    client.force_login(accountant)
    today = business_today()
    month = f"start={today - timedelta(days=29)}&end={today}"
    yesterday = today - timedelta(days=1)
    pages = {
        "dashboard, 30 days (/reports/)": f"/reports/?{month}",
        "dashboard, 30 days, amounts in EUR": f"/reports/?{month}&measure=EUR",
        "admin index with the dashboard panel": "/admin/",
    }
    if not args.skip_summary:
        pages["daily summary, one day"] = f"/reports/summary/?start={yesterday}&end={yesterday}"
        pages["daily summary, 30 days"] = f"/reports/summary/?{month}"
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    cpu_before = time.process_time()
    started = time.perf_counter()
    results = {name: measure(client, url, args.requests) for name, url in pages.items()}
    wall = time.perf_counter() - started
    report = {
        # The machine is shared: its load average says how much else ran while measuring.
        "machine": {
            "cores": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
            "this_process_cpu_percent": round(100 * (time.process_time() - cpu_before) / wall, 1),
        },
        "refunds": args.refunds,
        "sales": args.sales,
        "time_zone": TIME_ZONE,
        "requests_per_page": args.requests,
        "load": load,
        "pages": {name: {"url": pages[name], **figures} for name, figures in results.items()},
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))

    print(f"\n| page ({args.refunds:,} refunds, {args.sales:,} sales) | p50 | p95 | SQL queries | slowest query |")
    print("| --- | --- | --- | --- | --- |")
    for name, figures in results.items():
        print(
            f"| {name} | {figures['p50_ms']} ms | {figures['p95_ms']} ms | {figures['queries']} "
            f"| {figures['slowest_query_ms']} ms |"
        )


if __name__ == "__main__":
    main()
