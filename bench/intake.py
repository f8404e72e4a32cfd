"""Benchmark (by hand, not a test): `POST /api/refunds/` under gunicorn and PostgreSQL.

Sets up its own database (refundoffice_bench) and Redis db (1), the Stripe sandbox, a
support agent with an API token and one payment per request at the sandbox; starts gunicorn
(no DEBUG, WARNING logs), warms it up, then files --requests auto-approved refunds from
--concurrency client threads with keep-alive sessions. Each request is the real intake:
token auth, a payment lookup at the sandbox over HTTP, the payment row lock, the refund, its
log, the auto-approval and the task published to Redis (no worker runs: the tasks queue up).
--same-payment files them all against one payment, to measure the contended row lock.
Prints JSON: requests/s, latency percentiles, status counts, CPU by process, the config.
Logs: var/bench/intake/.

    .venv/bin/python bench/intake.py [--requests 3000] [--concurrency 16] [--gunicorn-workers 4]
        [--worker-class sync|gthread] [--threads 2] [--same-payment] [--stripe-rate-limit 25]
"""

import argparse
import time

import redis
from _common import (
    app_options,
    app_stack,
    create_payments,
    file_refunds,
    gunicorn_config,
    log_problems,
    note,
    print_report,
    refund_body,
    refund_counts,
    start_gunicorn,
    stop_on_signals,
)
from _cpu import CpuSplit, check_quiet_machine

DATABASE = "refundoffice_bench"
REDIS_DB = 1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured requests")
    parser.add_argument("--warmup", type=int, default=200, help="requests before measuring (not counted)")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--amount", type=int, default=2500, help="cents a refund; <= 5000 is auto-approved")
    parser.add_argument("--same-payment", action="store_true",
                        help="every refund on one payment (row-lock contention) instead of one payment each")
    app_options(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    stop_on_signals()
    busy_before = check_quiet_machine()
    total = args.warmup + args.requests
    gunicorn = gunicorn_config(args)
    with app_stack("intake", database=DATABASE, redis_db=REDIS_DB, stripe_rate_limit=args.stripe_rate_limit) as stack:
        sandbox = stack.sandbox
        note(f"setup: payments and gunicorn {gunicorn}")
        started = time.perf_counter()
        if args.same_payment:
            payments = create_payments(sandbox, 1, args.amount * total) * total
        else:
            payments = create_payments(sandbox, total, 2 * args.amount)
        payment_seconds = time.perf_counter() - started
        bodies = [refund_body(f"intake-{i}", payments[i], args.amount) for i in range(total)]

        base_url = start_gunicorn(stack.procs, stack.env, **gunicorn)
        # Warm-up: every gunicorn worker imports its lazy modules and opens its connections.
        warmup = file_refunds(base_url, stack.token, bodies[: args.warmup], concurrency=args.concurrency)

        sandbox.reset_stats()
        note(f"measuring: {args.requests} requests from {args.concurrency} threads")
        cpu = CpuSplit({"gunicorn": [stack.procs.running["gunicorn"].pid], "stripe sandbox": [sandbox.pid]}, DATABASE)
        cpu.start()
        result = file_refunds(base_url, stack.token, bodies[args.warmup:], concurrency=args.concurrency)
        cpu_split = cpu.stop(args.requests)

        report = {
            "benchmark": "intake: POST /api/refunds/ (auto-approved) under gunicorn + PostgreSQL",
            "config": {
                "requests": args.requests, "warmup": args.warmup, "client_threads": args.concurrency,
                "gunicorn": gunicorn, "amount": args.amount, "same_payment": args.same_payment,
                "stripe_rate_limit": args.stripe_rate_limit, "database": DATABASE, "redis_db": REDIS_DB,
                "machine_busy_before_percent": busy_before,
            },
            **result,
            "warmup_non_201": warmup["non_201"],
            "cpu": cpu_split,
            # Expected: one payment lookup per request (GET payment_intents/{id}, expanded).
            "sandbox_requests_measured": sandbox.stats()["requests"],
            "refunds_by_status": refund_counts(),
            "tasks_queued_in_redis": redis.Redis.from_url(stack.redis_url).llen("celery"),
            "setup_payments_per_second": round(len(set(payments)) / payment_seconds, 1),
            "log_problems": log_problems(stack.procs),
            "logs": str(stack.logs),
        }
    print_report(report)
    if result["non_201"] or warmup["non_201"]:
        raise SystemExit(f"{result['non_201'] + warmup['non_201']} requests did not answer 201")


if __name__ == "__main__":
    main()
