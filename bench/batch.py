"""Benchmark (by hand, not a test): a bulk refund file of --rows rows against the Stripe sandbox.

Sets up its own database (refundoffice_bulk_bench) and Redis db (2), the Stripe sandbox, a support
agent, --rows succeeded payments (one per row, 10.00 USD each), one Celery worker (prefork,
--concurrency, as shipped) and one beat, with the app's Stripe rate limit at --stripe-rate-limit
(25/s, Stripe's test-mode limit, the shipped default) and every row under the auto-approve
threshold. Then, as a person would:

- upload: the file read and its rows stored (refund_batch_create, in this process);
- dry run: until the worker has checked every row at Stripe (a payment lookup per row, through
  the shared rate limit);
- file: from confirming to the last row filed through intake (each row's own payment lookup);
- drain: from confirming to the last refund `succeeded` (the worker's submissions share the limit).

Checks that every row was filed once and that the sandbox made exactly --rows refunds. Reports
rows/s, the worker's peak RSS (main process + pool children, sampled from /proc every 0.5 s) and
the load average. Prints JSON. Logs: var/bench/batch/.

    .venv/bin/python bench/batch.py [--rows 10000] [--concurrency 4] [--stripe-rate-limit 25]
"""

import argparse
import os
import sys
import time

from _common import app_stack, create_payments, note, print_report, stop_on_signals
from _cpu import Peak, tree_rss_kib

DATABASE = "refundoffice_bulk_bench"
REDIS_DB = 2


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--stripe-rate-limit", type=float, default=25.0)
    return parser.parse_args()


def wait(predicate, what: str, timeout: float = 7200.0, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)


# A long function: the run's steps in order, as the report lists them.
def main():
    args = parse_args()
    stop_on_signals()
    load_before = os.getloadavg()
    with app_stack("batch", database=DATABASE, redis_db=REDIS_DB, stripe_rate_limit=args.stripe_rate_limit,
                   REFUND_AUTO_APPROVE_DEFAULT=10**9, REFUND_BATCH_MAX_ROWS=max(args.rows, 10_000),
                   REFUND_BATCH_MAX_BYTES=64 * 1024 * 1024) as stack:
        from django.contrib.auth import get_user_model
        from django.db.models import Count

        from refunds.models import RefundBatch, RefundRequest, RefundStatus
        from refunds.services import batches

        note(f"creating {args.rows} payments at the sandbox")
        payments = create_payments(stack.sandbox, args.rows, 10_000, threads=8)
        header = ",".join(batches.BATCH_COLUMNS)
        data = (header + "\n" + "".join(f"bench-{i:05},stripe,{pi},10.00,USD,,Outage,Bench mug\n"
                                        for i, pi in enumerate(payments))).encode()
        worker = stack.procs.start("worker", [
            sys.executable, "-m", "celery", "-A", "refundoffice", "worker", "--pool", "prefork",
            "--concurrency", str(args.concurrency), "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        ], stack.env)
        stack.procs.start("beat", [
            sys.executable, "-m", "celery", "-A", "refundoffice", "beat", "--loglevel", "WARNING",
            "--schedule", str(stack.logs / "celerybeat-schedule"),
        ], stack.env)
        peak = Peak(lambda: tree_rss_kib([worker.pid]))
        peak.start()
        agent = get_user_model().objects.get(username="bench-agent")
        created_before = stack.sandbox.stats()["refunds_created"]

        note(f"uploading {len(data):,} bytes")
        started = time.monotonic()
        batch = batches.refund_batch_create(user=agent, data=data, file_name="bench.csv")
        uploaded = time.monotonic()
        wait(lambda: RefundBatch.objects.get(pk=batch.pk).state == RefundBatch.State.CHECKED, "the dry run")
        checked = time.monotonic()
        batch.refresh_from_db()
        note(f"dry run done in {checked - uploaded:.0f} s: {batch.totals}")

        batches.refund_batch_confirm(batch_id=batch.pk, user=agent)
        confirmed = time.monotonic()
        wait(lambda: RefundBatch.objects.get(pk=batch.pk).state == RefundBatch.State.DONE, "the filing")
        filed = time.monotonic()
        note(f"filed in {filed - confirmed:.0f} s")
        wait(lambda: RefundRequest.objects.filter(status=RefundStatus.SUCCEEDED).count() == args.rows, "the drain",
             every=2.0)
        drained = time.monotonic()
        peak.stop()
        batch.refresh_from_db()
        outcomes = dict(batch.rows.values_list("outcome").annotate(n=Count("id")).order_by())
        provider_refunds = stack.sandbox.stats()["refunds_created"] - created_before
        report = {
            "rows": args.rows,
            "file_bytes": len(data),
            "stripe_rate_limit_per_s": args.stripe_rate_limit,
            "worker": f"prefork x {args.concurrency}",
            "upload_s": round(uploaded - started, 2),
            "dry_run_s": round(checked - uploaded, 1),
            "dry_run_rows_per_s": round(args.rows / (checked - uploaded), 1),
            "file_s": round(filed - confirmed, 1),
            "file_rows_per_s": round(args.rows / (filed - confirmed), 1),
            "drain_s (confirm to last succeeded)": round(drained - confirmed, 1),
            "drain_refunds_per_s": round(args.rows / (drained - confirmed), 1),
            "worker_peak_rss_mb": round(peak.peak / 1024, 1),
            "row_outcomes": outcomes,
            "refunds_filed": RefundRequest.objects.count(),
            "refunds_unverified": RefundRequest.objects.filter(payment_verified=False).count(),
            "provider_refunds": provider_refunds,
            "exactly_one_provider_refund_per_row": provider_refunds == args.rows,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
        print_report(report)


if __name__ == "__main__":
    main()
