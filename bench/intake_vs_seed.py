"""Benchmark (by hand, not a test): our intake against the seed's Flask design, same sandbox, same run.

Issue "Keep up with Stripe's live limit", aim 2: intake >= 2x the seed's design, p99 < 100 ms
at 16 clients. Sets up its own database (refundoffice_bench_seed), Redis db (6), the Stripe
sandbox and one payment per request for each side; starts our app under gunicorn (sync x 4
as shipped, `intake.py`'s set-up) and the seed's design (bench/seed_design: Flask under
gunicorn, sync x --seed-workers, 4 by default: the same worker count; a Slack sink process
answering 200; SQLite in var/bench/intake_vs_seed/seed.db). Warms both up, then alternates
--rounds pairs (ours first in pairs 1, 3, ..., the seed first in 2, 4, ...), --requests each,
from --concurrency client threads with keep-alive sessions, every request on its own payment:
ours `POST /api/refunds/` (2500 cents, auto-approved, must answer 201), the seed's
`POST /refund-request` (2500 cents, under its threshold, must answer 200 "auto_approved").
Prints JSON: per round req/s, latency, CPU ms per request by process (bench/_cpu.py), the
sandbox's requests; ours/seed per pair and the median; checks (every refund approved and one
task queued each on our side; one Stripe refund, one Slack post and one log row each on the
seed's); the load average before and after. Exits non-zero on any failed request or check.
Flask must be importable (`pip install -r requirements-dev.txt`). Logs: var/bench/intake_vs_seed/.

    .venv/bin/python bench/intake_vs_seed.py [--requests 1000] [--rounds 3] [--concurrency 16]
        [--seed-workers 4] [--seed-lookup charge|payment_intent] [--stripe-rate-limit 100]
"""

import argparse
import importlib.util
import os
import sqlite3
import statistics
import sys
import threading
import time

import redis
import requests
from _common import (
    STOPPING,
    app_options,
    app_stack,
    create_payments,
    file_refunds,
    free_port,
    gunicorn_config,
    latency_summary,
    log_problems,
    note,
    print_report,
    refund_body,
    refund_counts,
    start_gunicorn,
    stop_on_signals,
)
from _cpu import CpuSplit, check_quiet_machine
from sandbox_refunds import in_threads

DATABASE = "refundoffice_bench_seed"
REDIS_DB = 6


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per round and side")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of rounds (ours, seed), alternating")
    parser.add_argument("--warmup", type=int, default=200, help="requests per side before measuring")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--amount", type=int, default=2500, help="cents a refund; <= 5000: auto-approved on both sides")
    parser.add_argument("--seed-workers", type=int, default=4, help="the seed's gunicorn sync workers")
    parser.add_argument("--seed-lookup", default="charge", choices=["charge", "payment_intent"],
                        help="the seed gets a charge id (its article: one lookup) or a PaymentIntent id (two)")
    app_options(parser)
    return parser.parse_args()


def start_seed(stack, args) -> str:
    """The Slack sink and the seed's gunicorn; returns the seed's base URL once it answers."""
    sink_port, port = free_port(), free_port()
    stack.procs.start("slack sink", [sys.executable, "bench/seed_design/slack_sink.py", str(sink_port)], dict(os.environ))
    stack.procs.wait_for_log("slack sink", "listening")
    db = stack.logs / "seed.db"
    db.unlink(missing_ok=True)
    env = dict(os.environ, STRIPE_SECRET_KEY=stack.sandbox.api_key, STRIPE_API_BASE=stack.sandbox.base_url,
               SLACK_WEBHOOK_URL=f"http://127.0.0.1:{sink_port}/", SEED_DB=str(db))
    argv = [sys.executable, "-m", "gunicorn", "seed_design.app:app", "--pythonpath", "bench",
            "--bind", f"127.0.0.1:{port}", "--workers", str(args.seed_workers), "--worker-class", "sync"]
    stack.procs.start("seed gunicorn", argv, env)
    stack.procs.wait_for_log("seed gunicorn", "Booting worker with pid", count=args.seed_workers)
    stack.seed_db, stack.sink_url = db, f"http://127.0.0.1:{sink_port}/count"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)  # a 404 is an answer
            return f"http://127.0.0.1:{port}"
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def seed_bodies(sandbox, payments: list[str], args) -> list[dict]:
    """The seed's request bodies; with --seed-lookup charge each payment's charge id, read here."""
    if args.seed_lookup == "payment_intent":
        return [{"payment_intent": p, "amount": args.amount, "reason": "requested_by_customer"} for p in payments]
    per_thread = threading.local()

    def charge(i):
        if not hasattr(per_thread, "client"):
            per_thread.client = sandbox.client()
        return per_thread.client.v1.payment_intents.retrieve(payments[i]).latest_charge

    charges = in_threads(len(payments), 4, charge)  # in_threads returns them out of order: fine, all distinct
    return [{"charge_id": c, "amount": args.amount, "reason": "requested_by_customer"} for c in charges]


def post_seed(base_url: str, bodies: list[dict], *, concurrency: int) -> dict:
    """file_refunds' twin for the seed: success is 200 with status "auto_approved"."""
    per_thread = threading.local()
    url = f"{base_url}/refund-request"

    def post(i):
        if STOPPING.is_set():
            return 0.0, "not sent", ""
        if not hasattr(per_thread, "session"):
            per_thread.session = requests.Session()
        begin = time.perf_counter()
        try:
            response = per_thread.session.post(url, json=bodies[i], timeout=60)
            ok = response.status_code == 200 and response.json().get("status") == "auto_approved"
            status, text = ("ok" if ok else response.status_code), ("" if ok else response.text[:300])
        except (requests.RequestException, ValueError) as error:  # counted, not fatal: a benchmark
            status, text = f"error:{type(error).__name__}", str(error)[:300]
        return time.perf_counter() - begin, status, text

    started = time.perf_counter()
    results = in_threads(len(bodies), concurrency, post)
    seconds = time.perf_counter() - started
    failed = [(status, text) for _, status, text in results if status != "ok"]
    return {
        "requests": len(bodies),
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(bodies) / seconds, 1),
        "latency_ms": latency_summary([latency for latency, _, _ in results]),
        "ok": len(bodies) - len(failed),
        "failed": len(failed),
        "failed_samples": [f"{status}: {text}" for status, text in failed[:5]],
    }


def measure(side, send, stack, roots, requests_count) -> dict:
    """One round: the sandbox's counters reset, CPU split around the requests."""
    stack.sandbox.reset_stats()
    cpu = CpuSplit(roots, DATABASE)
    cpu.start()
    result = send()
    split = cpu.stop(requests_count)
    by_role = split["by_role"]
    own = ("gunicorn", "postgresql", "redis") if side == "ours" else ("seed gunicorn",)
    stats = stack.sandbox.stats()
    failed = result.get("non_201", result.get("failed"))
    return {
        "side": side,
        "requests_per_second": result["requests_per_second"],
        "latency_ms": result["latency_ms"],
        "failed": failed,
        "failed_samples": result.get("non_201_samples", result.get("failed_samples")),
        # The app's own processes: ours web + PostgreSQL + Redis; the seed's web (SQLite is in it).
        "cpu_ms_per_request_app": round(sum(by_role.get(r, {}).get("cpu_ms_per_unit", 0) for r in own), 2),
        "cpu_ms_per_request": {role: v["cpu_ms_per_unit"] for role, v in by_role.items()},
        "machine_busy_percent": split["machine_busy_percent"],
        "other_top": split["other_top"],
        "sandbox_requests": {path: sum(codes.values()) for path, codes in stats["requests"].items()},
        "sandbox_refunds_created": stats["refunds_created"],
    }


def summary(rounds: list[dict]) -> dict:
    ours = [r for r in rounds if r["side"] == "ours"]
    seed = [r for r in rounds if r["side"] == "seed"]
    ratios = [round(o["requests_per_second"] / s["requests_per_second"], 3) for o, s in zip(ours, seed)]
    median_ratio = statistics.median(ratios)
    ours_p99 = [o["latency_ms"]["p99"] for o in ours]
    return {
        "ours_requests_per_second": [o["requests_per_second"] for o in ours],
        "seed_requests_per_second": [s["requests_per_second"] for s in seed],
        "ratio_ours_to_seed_per_pair": ratios,
        "ratio_ours_to_seed_median": median_ratio,
        "ours_p99_ms": ours_p99,
        "seed_p99_ms": [s["latency_ms"]["p99"] for s in seed],
        "ours_cpu_ms_per_request_app": [o["cpu_ms_per_request_app"] for o in ours],
        "seed_cpu_ms_per_request_app": [s["cpu_ms_per_request_app"] for s in seed],
        "aim_met": median_ratio >= 2 and max(ours_p99) < 100,
    }


def seed_checks(stack, expected: int) -> dict:
    conn = sqlite3.connect(stack.seed_db)
    logged = conn.execute("SELECT count(*), count(DISTINCT charge_id) FROM refund_log").fetchone()
    conn.close()
    posts = int(requests.get(stack.sink_url, timeout=5).text)
    return {"expected": expected, "refund_log_rows": logged[0], "refund_log_distinct_charges": logged[1],
            "slack_posts": posts, "ok": logged[0] == logged[1] == posts == expected}


def main():  # long: the run in order (set-up, warm-up, alternating rounds, checks, report), read top to bottom
    args = parse_args()
    if importlib.util.find_spec("flask") is None:
        raise SystemExit("Flask is not installed: pip install -r requirements-dev.txt")
    stop_on_signals()
    load_before = os.getloadavg()
    busy_before = check_quiet_machine()
    per_side = args.warmup + args.rounds * args.requests
    gunicorn = gunicorn_config(args)
    # The two secrets production settings require (fail closed); the app's defaults otherwise.
    secrets = {"DJANGO_SECRET_KEY": "bench-not-a-secret", "STRIPE_WEBHOOK_SECRET": "whsec_bench"}
    with app_stack("intake_vs_seed", database=DATABASE, redis_db=REDIS_DB,
                   stripe_rate_limit=args.stripe_rate_limit, **secrets) as stack:
        sandbox = stack.sandbox
        note(f"setup: 2 x {per_side} payments, gunicorn {gunicorn}, seed sync x {args.seed_workers}")
        payments = create_payments(sandbox, 2 * per_side, 2 * args.amount)
        ours = [refund_body(f"vs-seed-{i}", payments[i], args.amount) for i in range(per_side)]
        seed = seed_bodies(sandbox, payments[per_side:], args)
        ours_url = start_gunicorn(stack.procs, stack.env, **gunicorn)
        seed_url = start_seed(stack, args)
        roots = {"gunicorn": [stack.procs.running["gunicorn"].pid],
                 "seed gunicorn": [stack.procs.running["seed gunicorn"].pid],
                 "slack sink": [stack.procs.running["slack sink"].pid], "stripe sandbox": [sandbox.pid]}

        warm_ours = file_refunds(ours_url, stack.token, ours[: args.warmup], concurrency=args.concurrency)
        warm_seed = post_seed(seed_url, seed[: args.warmup], concurrency=args.concurrency)
        rounds = []
        for pair in range(args.rounds):
            start = args.warmup + pair * args.requests
            batch = slice(start, start + args.requests)
            sides = {
                "ours": lambda b=batch: file_refunds(ours_url, stack.token, ours[b], concurrency=args.concurrency),
                "seed": lambda b=batch: post_seed(seed_url, seed[b], concurrency=args.concurrency),
            }
            for side in (("ours", "seed") if pair % 2 == 0 else ("seed", "ours")):
                note(f"pair {pair + 1}: {side}, {args.requests} requests from {args.concurrency} threads")
                rounds.append({"pair": pair + 1, **measure(side, sides[side], stack, roots, args.requests)})
        rounds.sort(key=lambda r: (r["pair"], r["side"]))

        by_status = refund_counts()
        checks = {
            "ours": {"expected": per_side, "refunds_by_status": by_status,
                     "tasks_queued_in_redis": redis.Redis.from_url(stack.redis_url).llen("celery")},
            "seed": seed_checks(stack, per_side),
            "warmup_failed": {"ours": warm_ours["non_201"], "seed": warm_seed["failed"]},
        }
        checks["ours"]["ok"] = by_status.get("approved") == per_side == checks["ours"]["tasks_queued_in_redis"]
        report = {
            "benchmark": "intake: ours (POST /api/refunds/) vs the seed's Flask design (POST /refund-request)",
            "config": {
                "requests_per_round": args.requests, "rounds": args.rounds, "warmup": args.warmup,
                "client_threads": args.concurrency, "amount": args.amount, "gunicorn_ours": gunicorn,
                "gunicorn_seed": {"workers": args.seed_workers, "worker_class": "sync"},
                "seed_lookup": args.seed_lookup, "stripe_rate_limit": args.stripe_rate_limit,
                "database": DATABASE, "redis_db": REDIS_DB, "machine_busy_before_percent": busy_before,
                "load_average_before": [round(x, 2) for x in load_before],
            },
            "summary": summary(rounds),
            "rounds": rounds,
            "checks": checks,
            "log_problems": log_problems(stack.procs),
            "logs": str(stack.logs),
        }
    report["config"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print_report(report)
    failed = sum(r["failed"] for r in rounds) + sum(checks["warmup_failed"].values())
    if failed or not checks["ours"]["ok"] or not checks["seed"]["ok"]:
        raise SystemExit(f"{failed} requests failed; checks ours ok={checks['ours']['ok']}, seed ok={checks['seed']['ok']}")


if __name__ == "__main__":
    main()
