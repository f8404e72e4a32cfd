"""Benchmark (by hand, not a test): refunds.create calls/s of the Stripe sandbox.

Starts the sandbox (quiet) unless --base-url is given, creates --payments
succeeded PaymentIntents, then --concurrency client threads refund them, one
stripe SDK refunds.create each, with the params and idempotency key format
the app sends (refunds/providers/stripe.py). Prints JSON: refunds/s, latency
percentiles, errors, and the sandbox process's CPU use when it started it.

    .venv/bin/python bench/sandbox_refunds.py [--payments 10000] [--concurrency 8]
"""

import argparse
import collections
import concurrent.futures
import contextlib
import itertools
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root

from devtools.stripe_sandbox.control import Sandbox, launch  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="use this running sandbox")
    parser.add_argument("--api-key", default="sk_test_bench")
    parser.add_argument("--payments", type=int, default=10000,
                        help="payments to create, one refund each")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="client threads")
    parser.add_argument("--amount", type=int, default=2500)
    return parser.parse_args()


def in_threads(count, threads, work):
    """Run work(i) for i < count on `threads` threads; return the results."""
    indexes = itertools.count()  # next() on it is atomic under the GIL

    def worker():
        done = []
        while (i := next(indexes)) < count:
            done.append(work(i))
        return done

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        return [r for f in futures for r in f.result()]


def cpu_seconds(pid):
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile_ms(latencies, q):
    return round(statistics.quantiles(latencies, n=100)[q - 1] * 1000, 2)


def bench(sandbox, args):
    started = time.perf_counter()
    payments = in_threads(args.payments, args.concurrency, lambda i: (
        sandbox.create_payment(args.amount, metadata={"order": f"bench-{i}"})))
    payment_seconds = time.perf_counter() - started

    per_thread = threading.local()  # one client per thread, as app workers

    def refund(i):
        if not hasattr(per_thread, "client"):
            per_thread.client = sandbox.client()
        params = {"payment_intent": payments[i], "amount": args.amount,
                  "reason": "requested_by_customer",
                  "metadata": {"refund_request": str(i),
                               "merchant_refund_id": f"mrf_bench_{i}"}}
        begin = time.perf_counter()
        try:
            per_thread.client.v1.refunds.create(params=params, options={
                "idempotency_key": f"refundoffice-{uuid.uuid4().hex}"})
            error = None
        except Exception as exc:  # counted, not fatal: a benchmark
            error = type(exc).__name__
        return time.perf_counter() - begin, error

    sandbox.reset_stats()
    cpu_before = cpu_seconds(sandbox.pid)
    started = time.perf_counter()
    results = in_threads(len(payments), args.concurrency, refund)
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds(sandbox.pid)

    latencies = [latency for latency, error in results if error is None]
    errors = collections.Counter(error for _, error in results if error)
    report = {
        "payments": len(payments),
        "payments_per_second": round(len(payments) / payment_seconds, 1),
        "concurrency": args.concurrency,
        "refunds_ok": len(latencies),
        "errors": dict(errors),
        "seconds": round(seconds, 3),
        "refunds_per_second": round(len(latencies) / seconds, 1),
        "latency_ms": {"p50": percentile_ms(latencies, 50),
                       "p90": percentile_ms(latencies, 90),
                       "p99": percentile_ms(latencies, 99),
                       "max": round(max(latencies) * 1000, 2)},
        "server_refunds_created": sandbox.stats()["refunds_created"],
    }
    if cpu_before is not None:
        busy = cpu_after - cpu_before
        report["server_cpu_percent"] = round(100 * busy / seconds, 1)
        report["server_cpu_ms_per_refund"] = round(
            1000 * busy / max(1, len(latencies)), 3)
    return report


def main():
    args = parse_args()
    if args.base_url:
        running = contextlib.nullcontext(Sandbox(args.base_url, args.api_key))
    else:
        running = launch(quiet=True, api_key=args.api_key)
    with running as sandbox:
        print(json.dumps(bench(sandbox, args), indent=2))


if __name__ == "__main__":
    main()
