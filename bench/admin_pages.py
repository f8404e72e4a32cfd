"""Admin changelist and approval queue at 10,000 and 1,000,000 refunds in PostgreSQL.

Run by hand (not a test):  .venv/bin/python bench/admin_pages.py [--sizes 10000 1000000] [--requests 40]

Uses its own database (refundoffice_bench_admin, dropped and re-created), fills it with SQL
(generate_series), then times each page in-process through Django's test client (the server's
time: view, queries, template) and counts its SQL queries. Prints JSON and a markdown table.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _pages import reset_database, setup_django  # noqa: E402  (bench/ is sys.path[0])
DB = "refundoffice_bench_admin"


def users():
    from tests import factories

    return factories.agent(username="bench-agent"), factories.manager(username="bench-manager")


def grow_to(target: int, agent_id: int) -> None:
    """Add refunds (and a payment per five refunds) until there are `target`: 5% pending
    approval, the rest spread over the other statuses; USD, EUR and JPY; a year of dates."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM refunds_refundrequest")
        start = cursor.fetchone()[0]
        if start >= target:
            return
        cursor.execute(
            """
            INSERT INTO refunds_payment (id, provider, connector_transaction_id, amount_minor, currency,
                                         amount_refunded_minor, status, product, customer, synced_at, created_at,
                                         dispute_id, dispute_state, dispute_status, dispute_reason)
            SELECT g, 'stripe', 'pi_bench' || g, 100000, (ARRAY['USD','USD','EUR','JPY'])[1 + mod(g, 4)], 0,
                   'succeeded', 'Product ' || mod(g, 50), '', now(), now(), '', '', '', ''
            FROM generate_series(%s / 5 + 1, %s / 5 + 1) AS g
            ON CONFLICT DO NOTHING
            """,
            [start, target],
        )
        cursor.execute(
            """
            INSERT INTO refunds_refundrequest (
                id, merchant_refund_id, provider, connector_transaction_id, payment_id, amount_minor, currency,
                reason, metadata, product, status, requested_by_id, request_fingerprint, idempotency_key,
                payment_verified, origin, connector_refund_id, provider_status, error_code, error_message,
                created_at, updated_at, submit_attempts, poll_count, items, dispute_overridden)
            SELECT g, 'bench-' || g, 'stripe', 'pi_bench' || (g / 5 + 1), g / 5 + 1, 100 + mod(g::bigint * 7919, 90000),
                   (ARRAY['USD','USD','EUR','JPY'])[1 + mod(g / 5 + 1, 4)], 'Bench refund', '{}', 'Product ' || mod(g, 50),
                   CASE WHEN mod(g, 20) = 0 THEN 'pending_approval'
                        WHEN mod(g, 20) = 1 THEN 'failed' WHEN mod(g, 20) = 2 THEN 'rejected'
                        ELSE 'succeeded' END,
                   %s, '', 'bench-key-' || g, true, 'app',
                   CASE WHEN mod(g, 20) < 3 THEN '' ELSE 're_bench' || g END, '', '', '',
                   now() - (mod(g, 525600) || ' minutes')::interval, now(), 1, 0, '[]', ''
            FROM generate_series(%s + 1, %s) AS g
            """,
            [agent_id, start, target],
        )
        cursor.execute("ANALYZE refunds_refundrequest; ANALYZE refunds_payment")


def measure(client, url: str, requests: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        assert client.get(url).status_code == 200
    times = []
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    # Read now: the next request's request_started signal empties the query log.
    query_count = len(queries)
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
        "queries": query_count,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    reset_database(DB)
    setup_django(DB)
    from django.test import Client
    from django.urls import reverse

    agent, manager = users()
    client = Client()
    client.force_login(manager)
    pages = {
        "changelist": reverse("admin:refunds_refundrequest_changelist"),
        "changelist, filtered (currency=EUR)": reverse("admin:refunds_refundrequest_changelist") + "?currency=EUR",
        "approval queue": reverse("admin:approvals_pendingrefund_changelist"),
    }
    results = {}
    for size in sorted(args.sizes):
        started = time.perf_counter()
        grow_to(size, agent.pk)
        print(f"{size} rows ready in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        results[size] = {name: measure(client, url, args.requests) for name, url in pages.items()}
    print(json.dumps(results, indent=2))

    small, large = min(results), max(results)
    print(f"\n| page | {small:,} rows p50 / p95 | {large:,} rows p50 / p95 | p95 ratio | queries |")
    print("| --- | --- | --- | --- | --- |")
    for name in pages:
        a, b = results[small][name], results[large][name]
        print(
            f"| {name} | {a['p50_ms']} / {a['p95_ms']} ms | {b['p50_ms']} / {b['p95_ms']} ms "
            f"| {b['p95_ms'] / a['p95_ms']:.2f} | {a['queries']} / {b['queries']} |"
        )


if __name__ == "__main__":
    main()
