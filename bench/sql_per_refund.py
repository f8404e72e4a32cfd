"""SQL statements, broker messages and in-process CPU per refund, from filing to `succeeded`.

Run by hand (not a test). Everything runs in this one process, so it counts, and does not time
concurrency: the real intake view (`POST /api/refunds/` through Django's test client, with an API
token, the payment looked up at the Stripe sandbox over HTTP), then every task the app publishes,
run one by one in publishing order the way a worker would run it (`Task.apply`), until nothing is
left to run. Each statement is counted with `connection.execute_wrapper`, per phase (intake,
each task by name); a "broker message" is one `apply_async` the app makes (the publish is
recorded instead of sent, so no worker and no broker run). SAVEPOINT/RELEASE are counted
separately; BEGIN/COMMIT are not SQL statements Django sends (psycopg opens the transaction) and
are not counted.

    .venv/bin/python bench/sql_per_refund.py                 # [--refunds 50] [--amount 2500] [--slack]

`--amount 2500` is auto-approved (at or under the 5000 default threshold); `--slack` gives the app a
Slack webhook URL (a local endpoint in this process that answers 200 and keeps the texts), so the
notification tasks are published and run as in production, each once (a failing post would be
retried, and its statements counted once per attempt). Drops and recreates the database `refundoffice_bench_sql` and
flushes Redis db 7 (`--database NAME --redis-db N` for others: a second run on the same database
is refused, so two checkouts measuring at once each name their own).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import app_stack, create_payments, note, print_report, refund_body, stop_on_signals  # noqa: E402


class StatementCounter:
    """An execute_wrapper: counts the statements of the current phase."""

    def __init__(self):
        self.phase = "setup"
        self.statements: collections.Counter = collections.Counter()
        self.savepoints: collections.Counter = collections.Counter()
        self.samples: dict[str, list[str]] = collections.defaultdict(list)

    def __call__(self, execute, sql, params, many, context):
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
            self.savepoints[self.phase] += 1
        else:
            self.statements[self.phase] += 1
            if len(self.samples[self.phase]) < 60:
                self.samples[self.phase].append(" ".join(sql.split())[:160])
        return execute(sql, params, many, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refunds", type=int, default=50)
    parser.add_argument("--amount", type=int, default=2500, help="minor units (2500: auto-approved)")
    parser.add_argument("--slack", action="store_true", help="publish the Slack notification tasks too")
    parser.add_argument("--slack-app", action="store_true",
                        help="the Slack app on too (its approval-message sync tasks; an auto-approved refund never "
                        "waited, so they only read, and nothing is sent to Slack's API)")
    parser.add_argument("--samples", action="store_true", help="print the first refund's statements")
    parser.add_argument("--fresh-clients", action="store_true",
                        help="build the Stripe adapter (and its HTTP session) per call, as before adapters were reused")
    parser.add_argument("--database", default="refundoffice_bench_sql", help="dropped and created again")
    parser.add_argument("--redis-db", type=int, default=7, help="flushed")
    args = parser.parse_args()
    stop_on_signals()
    with slack_endpoint(args.slack) as slack:
        extra = {"SLACK_WEBHOOK_URL": slack.url} if args.slack else {}
        if args.slack_app:
            extra.update(SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET="bench", SLACK_APPROVALS_CHANNEL="C0BENCH",
                         SLACK_API_BASE="http://127.0.0.1:9/api/")  # nothing listens: a call would fail the run
        with app_stack("sql_per_refund", database=args.database, redis_db=args.redis_db, **extra) as stack:
            report = measure(stack, args)
        report["slack_posts"] = len(slack.texts)
        report["slack_texts_of_the_last_refund"] = [t for t in slack.texts if f"sql-{args.refunds} " in t]
    print_report(report)


@contextlib.contextmanager
def slack_endpoint(wanted: bool):
    """Slack's incoming webhook, answering 200; keeps each message's `text`."""
    texts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            texts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    if not wanted:
        yield types.SimpleNamespace(url="", texts=texts)
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield types.SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}/services/T/B/X", texts=texts)
    finally:
        server.shutdown()


def measure(stack, args) -> dict:
    from celery.app.task import Task
    from django.db import connection

    if args.fresh_clients:
        from refunds.providers.stripe import StripeProvider

        StripeProvider.reusable = False
    payments = create_payments(stack.sandbox, args.refunds + 1, max(args.amount, 100))
    run = Run(token=stack.token, amount=args.amount)
    original = Task.apply_async
    Task.apply_async = run.record
    try:
        with connection.execute_wrapper(run.counter):
            for i, payment in enumerate(payments):
                run.refund(i, payment, measured=i > 0)  # the first refund warms caches and connections up
    finally:
        Task.apply_async = original
    return run.report(args)


class Run:
    """Files refunds one at a time and runs what they publish, counting per phase."""

    def __init__(self, *, token: str, amount: int):
        from django.test import Client

        self.client = Client(HTTP_AUTHORIZATION=f"Token {token}")
        self.amount = amount
        self.counter = StatementCounter()
        self.published: collections.deque = collections.deque()
        self.messages: collections.Counter = collections.Counter()
        self.cpu: collections.Counter = collections.Counter()
        self.statuses: collections.Counter = collections.Counter()
        run = self

        def record(task, args=None, kwargs=None, **options):  # stands in for Task.apply_async
            run.published.append((task.name, tuple(args or ()), dict(kwargs or {})))

        self.record = record

    def refund(self, i: int, payment: str, *, measured: bool) -> None:
        from refunds.models import RefundRequest

        self.counter.phase = "intake" if measured else "warmup"
        started = time.process_time()
        body = refund_body(f"sql-{i}", payment, self.amount)
        response = self.client.post("/api/refunds/", data=json.dumps(body), content_type="application/json")
        assert response.status_code == 201, (response.status_code, response.content[:300])
        if measured:
            self.cpu["intake"] += time.process_time() - started
        while self.published:
            name, task_args, task_kwargs = self.published.popleft()
            short = name.rsplit(".", 1)[-1]
            self.counter.phase = short if measured else "warmup"
            started = time.process_time()
            result = stack_task(name).apply(args=task_args, kwargs=task_kwargs, throw=False)
            if result.state != "SUCCESS":
                raise RuntimeError(f"{name}{task_args} ended {result.state}: {result.result!r}")
            if measured:
                self.messages[short] += 1
                self.cpu[short] += time.process_time() - started
        self.counter.phase = "setup"  # the bench's own read, not the last task's
        self.statuses[RefundRequest.objects.get(merchant_refund_id=f"sql-{i}").status] += 1

    def report(self, args) -> dict:
        n, counter = args.refunds, self.counter
        phases = ["intake", *(p for p in counter.statements if p not in ("setup", "warmup", "intake"))]
        report = {
            "refunds": n,
            "amount_minor": args.amount,
            "slack": args.slack,
            "slack_app": args.slack_app,
            "fresh_clients": args.fresh_clients,
            "final_statuses": dict(self.statuses),
            "sql_statements_per_refund": {phase: round(counter.statements[phase] / n, 2) for phase in phases},
            "sql_statements_per_refund_worker_total": round(sum(counter.statements[p] for p in phases[1:]) / n, 2),
            "savepoint_statements_per_refund": {phase: round(counter.savepoints[phase] / n, 2) for phase in phases},
            "broker_messages_per_refund": {name: round(count / n, 2) for name, count in self.messages.items()},
            "broker_messages_per_refund_total": round(sum(self.messages.values()) / n, 2),
            "cpu_ms_per_refund_in_process": {name: round(s * 1000 / n, 2) for name, s in self.cpu.items()},
            "load_average": os.getloadavg(),
            "note": "CPU is this process's (view + tasks + test client + SQL client side), not PostgreSQL's "
            "or the sandbox's; indicative only: profile and timers are not the point of this script.",
        }
        if args.samples:
            report["statements"] = {phase: counter.samples[phase] for phase in phases}
        return report


def stack_task(name: str):
    from refundoffice.celery import app

    return app.tasks[name]


if __name__ == "__main__":
    main()
