"""Benchmark (by hand, not a test): per-refund overhead of prism_stripe against the plain Stripe
adapter, on the same Stripe sandbox, in the same run.

Starts the sandbox (quiet), creates --payments succeeded PaymentIntents per adapter, then
refunds them one at a time from one thread, alternating the adapters in rounds of --round
refunds (so both see the same machine load). Each refund is one `create_refund` call as the
worker makes it. Reports per adapter: refunds/s, wall ms and this process's CPU ms per refund
(the sandbox's CPU is not counted: it is the same work for both), plus the installed size of
each SDK and the machine's load.

    .venv/bin/python bench/prism_overhead.py [--payments 400] [--round 20]
"""

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root

from bench._common import create_payments, log_dir, note, print_report, stop_on_signals  # noqa: E402
from bench._cpu import machine_busy_percent  # noqa: E402
from devtools.stripe_sandbox.control import launch  # noqa: E402
from refunds.providers import prism  # noqa: E402
from refunds.providers.base import Money  # noqa: E402
from refunds.providers.stripe import StripeProvider  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=400, help="refunds per adapter")
    parser.add_argument("--round", type=int, default=20, help="refunds per adapter before switching")
    parser.add_argument("--amount", type=int, default=2500)
    return parser.parse_args()


def installed_size(package: str) -> int:
    module = __import__(package)
    root = Path(module.__file__).parent
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def adapters(sandbox) -> dict:
    return {
        "stripe": StripeProvider(api_key=sandbox.api_key, api_base=sandbox.base_url, timeout=10),
        "prism_stripe": prism.provider_class("stripe")(
            values={"api_key": sandbox.api_key, "base_url": sandbox.base_url + "/"}, environment="SANDBOX", timeout=10
        ),
    }


def refund_once(adapter, payment: str, amount: int, index: int) -> None:
    adapter.create_refund(
        merchant_refund_id=f"bench-{index}-{payment[-8:]}",
        connector_transaction_id=payment,
        amount=Money(amount, "USD"),
        reason="requested_by_customer",
        metadata={"ticket": "bench"},
        idempotency_key=f"bench-{payment}",
    )


def measure(args, sandbox) -> dict:
    made = adapters(sandbox)
    payments = {name: create_payments(sandbox, args.payments, args.amount) for name in made}
    for name, adapter in made.items():  # warm up: connections, the SDK's first call
        refund_once(adapter, create_payments(sandbox, 1, args.amount)[0], args.amount, -1)
    totals = {name: {"wall": 0.0, "cpu": 0.0, "count": 0, "round_ms": []} for name in made}
    for start in range(0, args.payments, args.round):
        for name, adapter in made.items():
            batch = payments[name][start:start + args.round]
            wall, cpu = time.perf_counter(), time.process_time()
            for index, payment in enumerate(batch, start):
                refund_once(adapter, payment, args.amount, index)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            totals[name]["wall"] += wall
            totals[name]["cpu"] += cpu
            totals[name]["count"] += len(batch)
            totals[name]["round_ms"].append(1000 * wall / len(batch))
    return {
        name: {
            "refunds": t["count"],
            "refunds_per_second": round(t["count"] / t["wall"], 1),
            "wall_ms_per_refund": round(1000 * t["wall"] / t["count"], 2),
            "cpu_ms_per_refund": round(1000 * t["cpu"] / t["count"], 2),
            "round_wall_ms_median": round(statistics.median(t["round_ms"]), 2),
        }
        for name, t in totals.items()
    }


def main():
    args = parse_args()
    stop_on_signals()
    logging.disable(logging.INFO)  # httpx logs every request at INFO
    busy_before, load_before = machine_busy_percent(), os.getloadavg()
    with launch(settle_seconds=1.0, log_path=log_dir("prism_overhead") / "sandbox.log") as sandbox:
        note(f"sandbox at {sandbox.base_url}; {args.payments} refunds per adapter")
        results = measure(args, sandbox)
    stripe_cpu, prism_cpu = results["stripe"]["cpu_ms_per_refund"], results["prism_stripe"]["cpu_ms_per_refund"]
    print_report({
        "adapters": results,
        "prism_extra_cpu_ms_per_refund": round(prism_cpu - stripe_cpu, 2),
        "installed_bytes": {"payments (hyperswitch-prism)": installed_size("payments"), "stripe": installed_size("stripe")},
        "machine": {
            "cpus": os.cpu_count(),
            "busy_percent_before": busy_before,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
    })


if __name__ == "__main__":
    main()
