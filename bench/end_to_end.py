"""Benchmark (by hand, not a test): refunds/s from intake to `succeeded` through real workers.

Sets up its own database (refundoffice_bench_e2e) and Redis db (2), the Stripe sandbox, a
support agent, gunicorn, --workers Celery worker processes (by default as the app ships
them: 2 processes, each with the pool and concurrency the settings give, on PostgreSQL threads
x 24; `--pool`, `--concurrency` and `--db-pool` override) and one `celery beat` (dispatcher every second), then measures one or both of:

- drain: --refunds auto-approved refunds are filed through the API while the workers hold
  off (they consume a dummy queue), then all workers are told at once to consume the real
  queue; refunds/s = M / (last `resolved_at` - first claim `submitted_at`), read from the
  database. This is "the worker drains approved refunds" alone.
- steady: --steady-refunds are filed at --rate per second while the workers run, so web,
  workers, PostgreSQL and the sandbox share the machine; reports how long a refund takes
  from filing to `succeeded` and whether the workers keep up.

Checks that every refund ends `succeeded` and that the sandbox made exactly one refund per
request. Baseline in the same run, before the app starts: bench/sandbox_refunds.py's refund
loop (stripe SDK refunds.create with an idempotency key, client threads = workers x
concurrency) on a fresh sandbox; ratio = drain refunds/s / baseline refunds/s.
Prints JSON. Logs: var/bench/end_to_end/.

    .venv/bin/python bench/end_to_end.py [--mode both|drain|steady] [--refunds 2000]
        [--workers 2] [--concurrency N] [--pool app|prefork|threads|solo] [--db-pool N] [--rate 20]
        [--provider-latency 0.2] [--no-baseline]
"""

import argparse
import datetime
import os
import subprocess
import sys
import time
import types

from _common import (
    ROOT,
    app_options,
    app_stack,
    create_payments,
    file_refunds,
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
from _cpu import CpuSplit, Peak, check_quiet_machine, children_of, tree_rss_kib
from sandbox_refunds import bench as sandbox_bench

from devtools.stripe_sandbox.control import launch

DATABASE = "refundoffice_bench_e2e"
REDIS_DB = 2
HOLD_QUEUE = "bench-hold"  # no task is ever sent there: workers idle on it until released
TASK_QUEUE = "celery"  # where the app publishes refund_submit_task (Celery's default queue)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refunds", type=int, default=2000, help="refunds in the drain phase")
    parser.add_argument("--mode", default="both", choices=["drain", "steady", "both"])
    parser.add_argument("--steady-refunds", type=int, default=600, help="refunds in the steady phase")
    parser.add_argument("--rate", type=float, default=20.0, help="refunds filed per second in the steady phase")
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes (as shipped: one per core)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="--concurrency of each worker (0: the app's CELERY_WORKER_CONCURRENCY)")
    parser.add_argument("--pool", default="app", choices=["app", "prefork", "threads", "solo"],
                        help="app: the app's CELERY_WORKER_POOL (threads on PostgreSQL)")
    parser.add_argument("--db-pool", type=int, default=-1, metavar="N",
                        help="DATABASE_POOL_MAX_SIZE for the app's processes (-1: the app's default; 0: no pool)")
    parser.add_argument("--file-concurrency", type=int, default=8, help="client threads filing refunds")
    parser.add_argument("--amount", type=int, default=2500, help="cents a refund; <= 5000 is auto-approved")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for all refunds to end")
    parser.add_argument("--sandbox-rate-limit", type=float, default=0.0, metavar="N",
                        help="drain phase: the sandbox answers 429 beyond N requests/s (Stripe test mode: 25)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the sandbox-alone baseline")
    parser.add_argument("--provider-latency", type=float, default=0.0, metavar="SECONDS",
                        help="the sandbox waits this long before each refunds.create (as a remote "
                             "Stripe would), in the baseline too: measures how well the workers overlap "
                             "waiting rather than how much CPU a refund costs")
    app_options(parser)
    args = parser.parse_args()
    args.explicit_concurrency = args.concurrency > 0
    app_pool, app_concurrency = app_worker_settings()
    args.pool_effective = app_pool if args.pool == "app" else args.pool
    args.concurrency = args.concurrency or app_concurrency
    if args.pool_effective == "solo":
        args.concurrency = 1  # what solo does anyway; keeps "total concurrency" honest
    return args


def app_worker_settings() -> tuple[str, int]:
    """The worker pool and concurrency the app's settings give on PostgreSQL (what a worker
    started without --pool/--concurrency runs), read by loading the settings in a child."""
    code = ("import os; from django.conf import settings as s; print(getattr(s, 'CELERY_WORKER_POOL', 'prefork'),"
            " getattr(s, 'CELERY_WORKER_CONCURRENCY', os.cpu_count()))")  # Celery's defaults in an older tree
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "refundoffice.settings", "REFUNDOFFICE_DEV_DEFAULTS": "1",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    pool, concurrency = out.stdout.split()
    return pool, int(concurrency)


# --- workers ----------------------------------------------------------------------------------


def start_workers(stack, args, *, hold: bool) -> list[str]:
    """K workers and one beat. With `hold` the workers consume only HOLD_QUEUE (nothing is
    ever sent there) until release_workers(), so their start-up is not timed."""
    names = []
    # The app's own choice unless told: what `bin/run` and docker-compose start.
    pool = [] if args.pool == "app" else ["--pool", args.pool]
    concurrency = ["--concurrency", str(args.concurrency)] if args.explicit_concurrency else []
    for i in range(args.workers):
        name = f"worker{i}"
        stack.procs.start(name, [
            sys.executable, "-m", "celery", "-A", "refundoffice", "worker", "--hostname", f"bench{i}@e2e",
            *pool, *concurrency, "--loglevel", "WARNING",
            # As Procfile.dev: no worker-to-worker chatter. Remote control stays on (release_workers).
            "--without-gossip", "--without-mingle",
            "--queues", HOLD_QUEUE if hold else TASK_QUEUE,
        ], stack.env)
        names.append(f"bench{i}@e2e")
    stack.procs.start("beat", [
        sys.executable, "-m", "celery", "-A", "refundoffice", "beat", "--loglevel", "WARNING",
        "--schedule", str(stack.logs / "celerybeat-schedule"),
    ], stack.env)
    wait_for_workers(stack, names)
    return names


def wait_for_workers(stack, names: list[str], timeout: float = 90.0) -> None:
    from refundoffice.celery import app

    deadline = time.monotonic() + timeout
    while True:
        replies = app.control.ping(destination=names, timeout=1.0)
        if len(replies) == len(names):
            return
        for name in stack.procs.running:
            if stack.procs.running[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{stack.procs.log_text(name)[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not ready in {timeout}s: {len(replies)}/{len(names)} answered")


def release_workers(names: list[str]) -> float:
    """Every worker starts consuming the task queue; returns the wall-clock time it was asked."""
    from refundoffice.celery import app

    asked = time.time()
    replies = app.control.add_consumer(TASK_QUEUE, destination=names, reply=True, timeout=5.0)
    if len(replies) != len(names):
        raise RuntimeError(f"only {len(replies)}/{len(names)} workers took the queue: {replies}")
    return asked


# --- measuring --------------------------------------------------------------------------------


def wait_until_final(prefix: str, count: int, timeout: float) -> bool:
    """Until `count` refunds of this phase are final or waiting for a person (or `timeout`);
    a cheap count every 0.25 s, so the watcher costs next to nothing on a busy machine."""
    from refunds.models import FINAL_STATUSES, RefundRequest, RefundStatus

    settled = [*FINAL_STATUSES, RefundStatus.NEEDS_ATTENTION]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = RefundRequest.objects.filter(merchant_refund_id__startswith=prefix, status__in=settled).count()
        if done >= count:
            return True
        time.sleep(0.25)
    return False


def phase_timeline(prefix: str) -> types.SimpleNamespace:
    """Timestamps of the phase's refunds, from the database (one clock: this machine's)."""
    from django.db.models import Max, Min

    from refunds.models import RefundLog, RefundRequest

    refunds = RefundRequest.objects.filter(merchant_refund_id__startswith=prefix)
    span = refunds.aggregate(
        first_created=Min("created_at"), last_created=Max("created_at"),
        first_claim=Min("submitted_at"), last_resolved=Max("resolved_at"),
    )
    rows = list(refunds.values_list("created_at", "approved_at", "submitted_at", "resolved_at", "connector_refund_id"))
    provider_calls = RefundLog.objects.filter(refund__in=refunds, event=RefundLog.Event.PROVIDER_CALL).count()
    return types.SimpleNamespace(**span, rows=rows, provider_calls=provider_calls)


def seconds_between(start: datetime.datetime | None, end: datetime.datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def outcome(stack, prefix: str, count: int, finished: bool, timeline) -> dict:
    """What every phase reports and checks: final statuses, one provider refund per request."""
    stats = stack.sandbox.stats()
    connector_ids = {row[4] for row in timeline.rows if row[4]}
    by_status = refund_counts(prefix)
    return {
        "all_final_before_timeout": finished,
        "refunds_by_status": by_status,
        "all_succeeded": by_status.get("succeeded", 0) == count,
        "provider_refunds_created": stats["refunds_created"],  # stats reset at the phase's start
        "provider_refunds_match": stats["refunds_created"] == count == len(connector_ids),
        "provider_idempotent_replays": stats["idempotent_replays"],
        "provider_requests": stats["requests"],
        "provider_calls_logged": timeline.provider_calls,  # > count: re-submissions happened
    }


def work_in_slots(timeline, slots: int, seconds: float) -> float | None:
    """Share of the worker slots' time spent inside a refund (claim → recorded). Near 100%:
    the time goes into the refund's own work; much lower: into Celery, the broker or waiting."""
    busy = sum(seconds_between(row[2], row[3]) or 0 for row in timeline.rows)
    return round(100 * busy / (slots * seconds), 1) if seconds else None


def drain_phase(stack, args, payments: list[str], cpu_roots) -> dict:
    prefix = "e2e-drain-"
    bodies = [refund_body(f"{prefix}{i}", payments[i], args.amount) for i in range(args.refunds)]
    note(f"drain: filing {args.refunds} refunds through the API (workers on hold)")
    filing = file_refunds(stack.base_url, stack.token, bodies, concurrency=args.file_concurrency)
    stack.sandbox.reset_stats()
    if args.sandbox_rate_limit:
        # Stripe's own limit (test mode: 25/s), answered with 429 beyond: the drain must pace
        # itself to it (the app's limit, --stripe-rate-limit) and lose nothing to throttling.
        stack.sandbox.set_rate_limit(args.sandbox_rate_limit)
    note("drain: workers released")
    cpu = CpuSplit(cpu_roots(), DATABASE)
    cpu.start()
    worker_pids = [p.pid for n, p in stack.procs.running.items() if n.startswith("worker")]
    peak_rss = Peak(lambda: tree_rss_kib(worker_pids))
    peak_connections = Peak(database_connections)
    peak_rss.start()
    peak_connections.start()
    released = release_workers(stack.workers)
    finished = wait_until_final(prefix, args.refunds, args.timeout)
    cpu_split = cpu.stop(args.refunds)
    peaks = {"workers_peak_rss_mb": round(peak_rss.stop() / 1024, 1),
             "database_connections_peak": peak_connections.stop()}
    timeline = phase_timeline(prefix)
    seconds = seconds_between(timeline.first_claim, timeline.last_resolved)
    from_release = timeline.last_resolved.timestamp() - released if timeline.last_resolved else None
    return {
        "refunds": args.refunds,
        "filing": {k: filing[k] for k in ("seconds", "requests_per_second", "status_counts", "non_201_samples")},
        "seconds_first_claim_to_last_succeeded": round(seconds, 3) if seconds else None,
        "seconds_release_to_last_succeeded": round(from_release, 3) if from_release else None,
        "refunds_per_second": round(args.refunds / seconds, 1) if seconds else None,
        "refund_work_ms": latency_summary(
            [seconds_between(r[2], r[3]) for r in timeline.rows if r[2] and r[3]]),
        "worker_slots_busy_percent": work_in_slots(timeline, args.workers * args.concurrency, seconds),
        **peaks,
        **outcome(stack, prefix, args.refunds, finished, timeline),
        **rate_limit_outcome(stack, args, seconds),
        "cpu": cpu_split,
    }


def database_connections() -> int:
    """Sessions open on the benchmark's database (every process's, this sampler's excluded)."""
    from django.db import connections  # noqa: I001 - Django is loaded by app_stack, after start-up

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def rate_limit_outcome(stack, args, seconds: float | None) -> dict:
    if not args.sandbox_rate_limit:
        return {}
    stats = stack.sandbox.stats()
    rate = args.refunds / seconds if seconds else 0.0
    return {
        "sandbox_rate_limit": args.sandbox_rate_limit,
        "achieved_rate_ratio_to_limit": round(rate / args.sandbox_rate_limit, 3),
        "sandbox_429s": stats.get("rate_limited", 0),
    }


def steady_phase(stack, args, payments: list[str], cpu_roots) -> dict:
    prefix = "e2e-steady-"
    bodies = [refund_body(f"{prefix}{i}", payments[i], args.amount) for i in range(args.steady_refunds)]
    stack.sandbox.reset_stats()
    note(f"steady: filing {args.steady_refunds} refunds at {args.rate}/s while the workers run")
    cpu = CpuSplit(cpu_roots(), DATABASE)
    cpu.start()
    filing = file_refunds(stack.base_url, stack.token, bodies, concurrency=args.file_concurrency, rate=args.rate)
    finished = wait_until_final(prefix, args.steady_refunds, args.timeout)
    cpu_split = cpu.stop(args.steady_refunds)
    timeline = phase_timeline(prefix)
    seconds = seconds_between(timeline.first_created, timeline.last_resolved)
    tail = seconds_between(timeline.last_created, timeline.last_resolved)
    return {
        "refunds": args.steady_refunds,
        "offered_rate": args.rate,
        "filing": {k: filing[k] for k in ("seconds", "requests_per_second", "latency_ms", "status_counts",
                                          "non_201_samples")},
        "seconds_first_filed_to_last_succeeded": round(seconds, 3) if seconds else None,
        "refunds_per_second": round(args.steady_refunds / seconds, 1) if seconds else None,
        # Kept up: the last refund ends about one refund's time after it was filed.
        "seconds_last_filed_to_last_succeeded": round(tail, 3) if tail is not None else None,
        "filed_to_succeeded_ms": latency_summary([seconds_between(r[0], r[3]) for r in timeline.rows if r[3]]),
        "approved_to_claimed_ms": latency_summary(
            [seconds_between(r[1], r[2]) for r in timeline.rows if r[1] and r[2]]),
        **outcome(stack, prefix, args.steady_refunds, finished, timeline),
        "cpu": cpu_split,
    }


def add_provider_latency(sandbox, seconds: float) -> None:
    """A sandbox fault rule that only delays (asyncio.sleep, the sandbox stays responsive)."""
    if seconds:
        sandbox.add_fault(None, count=None, delay_seconds=seconds, path_prefix="/v1/refunds", methods=["POST"])


def baseline(args) -> dict:
    """bench/sandbox_refunds.py on its own fresh sandbox, as many client threads as worker slots."""
    threads = args.workers * args.concurrency
    note(f"baseline: sandbox alone, {args.refunds} refunds from {threads} threads")
    with launch(quiet=True, api_key="sk_test_bench") as sandbox:
        add_provider_latency(sandbox, args.provider_latency)
        report = sandbox_bench(sandbox, types.SimpleNamespace(payments=args.refunds, concurrency=threads,
                                                              amount=args.amount))
    return {k: report[k] for k in ("concurrency", "refunds_ok", "errors", "seconds", "refunds_per_second",
                                   "latency_ms", "server_cpu_percent")}


def main():
    args = parse_args()
    stop_on_signals()
    report = {
        "benchmark": "end to end: auto-approved refund filed through the API to `succeeded` by Celery workers",
        "config": {
            "refunds": args.refunds, "mode": args.mode, "workers": args.workers, "pool": args.pool_effective,
            "database_pool_max_size": args.db_pool if args.db_pool >= 0 else "app default",
            "concurrency_per_worker": args.concurrency, "total_concurrency": args.workers * args.concurrency,
            "steady_refunds": args.steady_refunds, "steady_rate": args.rate, "gunicorn": gunicorn_config(args),
            "provider_latency_seconds": args.provider_latency, "stripe_rate_limit": args.stripe_rate_limit,
            "database": DATABASE, "redis_db": REDIS_DB, "machine_busy_before_percent": check_quiet_machine(),
        },
    }
    if not args.no_baseline:
        report["baseline_sandbox_alone"] = baseline(args)
    env = {"REFUND_POLL_EVERY_SECONDS": "1", "REFUND_POLL_FIRST_DELAY": "1"}
    if args.db_pool >= 0:
        env["DATABASE_POOL_MAX_SIZE"] = str(args.db_pool)
    with app_stack("end_to_end", database=DATABASE, redis_db=REDIS_DB, stripe_rate_limit=args.stripe_rate_limit,
                   **env) as stack:
        drain = args.mode in ("drain", "both")
        steady = args.mode in ("steady", "both")
        count = (args.refunds if drain else 0) + (args.steady_refunds if steady else 0)
        note(f"setup: {count} payments, gunicorn, {args.workers} worker(s) and beat")
        payments = create_payments(stack.sandbox, count, 2 * args.amount)
        add_provider_latency(stack.sandbox, args.provider_latency)
        stack.base_url = start_gunicorn(stack.procs, stack.env, **gunicorn_config(args))
        stack.workers = start_workers(stack, args, hold=drain)

        def cpu_roots():
            running = stack.procs.running
            mains = [p.pid for n, p in running.items() if n.startswith("worker")]
            return {
                # The main process talks to the broker; prefork's children run the tasks.
                "celery worker main": mains,
                "celery pool children": [child for pid in mains for child in children_of(pid)],
                "celery beat": [running["beat"].pid],
                "gunicorn": [running["gunicorn"].pid],
                "stripe sandbox": [stack.sandbox.pid],
            }

        if drain:
            report["drain"] = drain_phase(stack, args, payments[: args.refunds], cpu_roots)
        if steady:
            report["steady"] = steady_phase(stack, args, payments[count - args.steady_refunds:], cpu_roots)
        report["log_problems"] = log_problems(stack.procs)
        report["logs"] = str(stack.logs)
    if drain and "baseline_sandbox_alone" in report and report["drain"]["refunds_per_second"]:
        report["ratio_drain_to_sandbox_alone"] = round(
            report["drain"]["refunds_per_second"] / report["baseline_sandbox_alone"]["refunds_per_second"], 3)
    print_report(report)
    phases = [report[p] for p in ("drain", "steady") if p in report]
    if not all(p["all_succeeded"] and p["provider_refunds_match"] for p in phases):
        raise SystemExit("not every refund succeeded exactly once at the provider: see the report")


if __name__ == "__main__":
    main()
