"""Shared by bench/intake.py and bench/end_to_end.py (benchmarks run by hand).

What both need: a throw-away PostgreSQL database and Redis db, the app's environment
pointed at a sandbox, a support agent with an API token, payments at the sandbox, app
processes (gunicorn, Celery) that are always stopped, and a client that files refunds through
`POST /api/refunds/`. The per-process CPU split is bench/_cpu.py's. The thread pool,
percentiles and the sandbox-alone refund loop are bench/sandbox_refunds.py's, imported, not copied.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # refundoffice, refunds, devtools

from sandbox_refunds import in_threads, percentile_ms  # noqa: E402  (bench/ is sys.path[0])

from devtools.stripe_sandbox.control import launch  # noqa: E402

POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"
AGENT = "bench-agent"
CURRENCY = "USD"


# --- run control ----------------------------------------------------------------------------


STOPPING = threading.Event()  # set on Ctrl-C or SIGTERM: client threads stop sending


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so the `finally`/`with` blocks that stop
    the processes run for `kill` too; they also set STOPPING first, else a thread pool's
    exit would wait for its threads to send every request that is left. Further signals
    are ignored: a second Ctrl-C must not cut the clean-up short."""

    def handler(signum, frame):
        STOPPING.set()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def log_dir(name: str) -> Path:
    """var/bench/NAME/: every process's log, kept after the run for a look (var/ is ignored by git)."""
    path = ROOT / "var" / "bench" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def note(message: str) -> None:
    """Progress on stderr (the report alone goes to stdout)."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def print_report(report: dict) -> None:
    print(json.dumps(report, indent=2, default=str), flush=True)


# --- database, Redis, Django ----------------------------------------------------------------


_lock_connections = []  # open until the process exits: they hold the advisory locks


def reset_database(name: str) -> str:
    """Drop and create NAME; return its DATABASE_URL. FORCE ends connections a crashed run
    left. First takes a PostgreSQL advisory lock on NAME for the life of this process: a
    second run (from any checkout) would drop the database under the first one."""
    import psycopg

    conn = psycopg.connect(f"{POSTGRES}/postgres", autocommit=True)
    if not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [f"refundoffice-bench:{name}"]).fetchone()[0]:
        raise SystemExit(f"another benchmark run is using the database {name}")
    _lock_connections.append(conn)
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.execute(f'CREATE DATABASE "{name}"')
    return f"{POSTGRES}/{name}"


def reset_redis(db: int) -> str:
    """Flush Redis db DB (broker and cache of this benchmark only); return its REDIS_URL."""
    import redis

    url = f"{REDIS}/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


# From the caller's shell these would switch on DEBUG or point Celery at another broker.
_NOT_INHERITED = ("DJANGO_DEBUG", "CELERY_BROKER_URL")


def app_env(*, database_url: str, redis_url: str, sandbox, stripe_rate_limit: float = 0.0, **extra: str) -> dict:
    """The environment of every app process (and of this one, for the ORM): production-like
    (no DEBUG, WARNING logs, so neither query logging nor log I/O is measured). The app's own
    Stripe rate limit (STRIPE_RATE_LIMIT_PER_SECOND, 25/s by default, fleet-wide) is off
    unless asked for: with it the benchmarks would measure the limit, not the app."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(
        DJANGO_SETTINGS_MODULE="refundoffice.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        STRIPE_API_BASE=sandbox.base_url,
        STRIPE_SECRET_KEY=sandbox.api_key,
        SLACK_WEBHOOK_URL="",  # no Slack unless asked: its tasks would be extra broker traffic and HTTP calls
        SLACK_BOT_TOKEN="",
        LOG_LEVEL="WARNING",
        STRIPE_RATE_LIMIT_PER_SECOND=str(stripe_rate_limit),
        PYTHONUNBUFFERED="1",
    )
    # Production settings fail closed without these; a benchmark needs no real ones.
    env.setdefault("DJANGO_SECRET_KEY", "bench-not-a-secret-0123456789abcdef")
    env.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_bench")
    env.update({k: str(v) for k, v in extra.items()})  # the caller's word wins
    return env


def setup_django(env: dict) -> None:
    """Load the app in this process with `env` (for setup and for reading results), then
    migrate the fresh database."""
    for name in _NOT_INHERITED:
        os.environ.pop(name, None)
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)


@contextlib.contextmanager
def app_stack(name: str, *, database: str, redis_db: int, stripe_rate_limit: float = 0.0, **extra_env: str):
    """Everything a benchmark of the app stands on, torn down on exit (also on an error, or
    on Ctrl-C / SIGTERM with stop_on_signals()): a fresh database and Redis db, the sandbox
    (quiet), Django loaded here with the app's environment, a support agent's token, and a
    `Processes` for the app's processes. Yields a namespace: sandbox, env, procs, token,
    redis_url, logs."""
    logs = log_dir(name)
    database_url = reset_database(database)
    redis_url = reset_redis(redis_db)
    with launch(quiet=True, api_key="sk_test_bench") as sandbox, Processes(logs) as procs:
        env = app_env(database_url=database_url, redis_url=redis_url, sandbox=sandbox,
                      stripe_rate_limit=stripe_rate_limit, **extra_env)
        setup_django(env)
        yield types.SimpleNamespace(
            sandbox=sandbox, env=env, procs=procs, token=create_agent(), redis_url=redis_url, logs=logs
        )


def create_agent() -> str:
    """A support agent (the migrated "Support agents" group) and its API token; returns the key.
    Same code as `manage.py createapitoken`, without a second Django start-up."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from refunds.api.authentication import api_token_create
    from refunds.roles import SUPPORT_AGENTS

    user = get_user_model().objects.create_user(AGENT, password=None)
    user.groups.add(Group.objects.get(name=SUPPORT_AGENTS))
    return api_token_create(user=user)


def create_payments(sandbox, count: int, amount: int, threads: int = 4) -> list[str]:
    """`count` succeeded PaymentIntents of `amount` cents at the sandbox."""
    return in_threads(count, threads, lambda i: sandbox.create_payment(amount, metadata={"product": "Bench mug"}))


def refund_counts(prefix: str = "") -> dict[str, int]:
    """Refunds by status (those whose merchant_refund_id starts with `prefix`), and how many
    were accepted without the payment lookup (the provider was unreachable or rate-limited)."""
    from django.db.models import Count

    from refunds.models import RefundRequest

    refunds = RefundRequest.objects.filter(merchant_refund_id__startswith=prefix)
    counts = dict(sorted(refunds.values_list("status").annotate(n=Count("id"))))
    unverified = refunds.filter(payment_verified=False).count()
    return {**counts, "payment_unverified": unverified} if unverified else counts


# --- processes --------------------------------------------------------------------------------


class Processes:
    """App processes, each in its own session (so Ctrl-C reaches only this script, which then
    stops them in order) with its output in LOGS/NAME.log. A context manager: leaving it
    stops everything still running, also after an error."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.running: dict[str, subprocess.Popen] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for name in reversed(list(self.running)):
            self.stop(name)

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        with open(self.log_path(name), "wb") as log:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def log_text(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace")

    def wait_for_log(self, name: str, needle: str, count: int = 1, timeout: float = 60.0) -> None:
        """Until `needle` appears `count` times in NAME's log; fail if the process dies first."""
        proc, deadline = self.running[name], time.monotonic() + timeout
        while self.log_text(name).count(needle) < count:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_text(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {timeout}s:\n{self.log_text(name)[-3000:]}")
            time.sleep(0.1)

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM to the main process (gunicorn and Celery shut down their children), then
        SIGKILL to its whole process group if it lingers. Only ever our own group ids."""
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # Children that outlived a clean exit of their parent (should not happen): same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def log_problems(procs: Processes) -> dict:
    """Error and warning lines (and tracebacks) in the logs of the app's processes, counted
    by process and level, with the first few. Celery's start-up banner is not a problem."""
    counts, samples = collections.Counter(), []
    for name in list(procs.running):
        for line in procs.log_text(name).splitlines():
            match = re.search(r"\b(ERROR|CRITICAL|WARNING|Traceback)\b", line)
            if match and "logfile ->" not in line:
                counts[f"{name} {match.group(1)}"] += 1
                if len(samples) < 5:
                    samples.append(f"{name}: {line[:300]}")
    return {"counts": dict(counts), "samples": samples}


def start_gunicorn(procs: Processes, env: dict, *, workers: int, worker_class: str, threads: int) -> str:
    """gunicorn on a free port; returns its base URL once all `workers` have booted and it answers."""
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "refundoffice.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", worker_class, "--threads", str(threads),
        # Defaults otherwise; no access log (it would be measured as disk writes).
    ]
    procs.start("gunicorn", argv, env)
    procs.wait_for_log("gunicorn", "Booting worker with pid", count=workers)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{base_url}/healthz", timeout=5)
            return base_url
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def app_options(parser) -> None:
    """Options of the app's processes, the same in both benchmarks."""
    parser.add_argument("--stripe-rate-limit", type=float, default=0.0, metavar="N",
                        help="the app's own fleet-wide Stripe requests/s (the app's default is 25); 0: off")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    # sync, as the app ships (Dockerfile, Procfile.dev). Measured on 2 cores: the same
    # requests/s as gthread (CPU-bound either way), a shorter tail (the kernel spreads new
    # connections over the workers; gthread pins each keep-alive connection to one).
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"],
                        help="sync (default, as shipped) closes each connection; gthread keeps them alive")
    parser.add_argument("--threads", type=int, default=2, help="per gunicorn worker (gthread only)")


def gunicorn_config(args) -> dict:
    threads = args.threads if args.worker_class == "gthread" else 1  # >1 turns sync into gthread
    return {"workers": args.gunicorn_workers, "worker_class": args.worker_class, "threads": threads}


# --- the API client ---------------------------------------------------------------------------


def refund_body(merchant_refund_id: str, payment: str, amount: int) -> dict:
    return {
        "merchant_refund_id": merchant_refund_id,
        "provider": "stripe",
        "connector_transaction_id": payment,
        "amount": {"minor_amount": amount, "currency": CURRENCY},
        "reason": "requested_by_customer",
        "metadata": {"ticket": merchant_refund_id},
        "product": "Bench mug",
    }


def file_refunds(base_url: str, token: str, bodies: list[dict], *, concurrency: int, rate: float = 0.0) -> dict:
    """POST every body to /api/refunds/ from `concurrency` threads, each with its own keep-alive
    session. `rate` > 0 paces the starts to that many per second (an open loop: a slow server
    makes requests overlap, it does not lower the offered rate). Returns timings, status counts
    and a few non-201 answers."""
    per_thread = threading.local()
    url = f"{base_url}/api/refunds/"

    def post(i):
        if STOPPING.is_set():
            return 0.0, "not sent", ""
        if not hasattr(per_thread, "session"):
            per_thread.session = requests.Session()
            per_thread.session.headers["Authorization"] = f"Token {token}"
        if rate:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        begin = time.perf_counter()
        try:
            response = per_thread.session.post(url, json=bodies[i], timeout=60)
            status, text = response.status_code, ("" if response.status_code == 201 else response.text[:300])
        except requests.RequestException as error:  # counted, not fatal: a benchmark
            status, text = f"error:{type(error).__name__}", str(error)[:300]
        return time.perf_counter() - begin, status, text

    started = time.perf_counter()
    results = in_threads(len(bodies), concurrency, post)
    seconds = time.perf_counter() - started
    statuses = collections.Counter(str(status) for _, status, _ in results)
    latencies = [latency for latency, _, _ in results]
    return {
        "requests": len(bodies),
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(bodies) / seconds, 1),
        "latency_ms": latency_summary(latencies),
        "status_counts": dict(statuses),
        "non_201": len(bodies) - statuses.get("201", 0),
        "non_201_samples": [f"{status}: {text}" for _, status, text in results if status != 201][:5],
    }


def latency_summary(seconds: list[float]) -> dict:
    if len(seconds) < 2:
        return {}
    return {
        "p50": percentile_ms(seconds, 50), "p90": percentile_ms(seconds, 90),
        "p99": percentile_ms(seconds, 99), "max": round(max(seconds) * 1000, 2),
    }
