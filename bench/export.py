"""Export of 1,000,000 refunds to CSV against PostgreSQL's own COPY of the same query.

Run by hand (not a test):  .venv/bin/python bench/export.py [--refunds 1000000] [--repeat 2] [--reuse]

Uses its own database (refundoffice_bench_export, dropped and re-created unless --reuse finds
it filled), fills it with SQL (generate_series): refunds in USD/EUR/JPY/KWD over a year, 95 %
resolved, each with its approvals (auto, one or two managers, rejections). Then, each in its
own process, measured with wall time and peak RSS (os.wait4's rusage of that child):

- `psql \\copy (the app's export query) to FILE csv header`: the baseline;
- the app's export job (`refunds.reports.exports.jobs.export_job_run`, as a worker runs it): rows from the
  server-side cursor to CSV, stored in the database as 1 MiB ExportChunk rows;
- the same rows and CSV writer straight into a local file (no chunk storage).

Prints JSON and a markdown table; the ratios are app / COPY in the same run.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = "refundoffice_bench_export"
SERVER = "postgres://postgres@127.0.0.1:5432"
DATABASE_URL = f"{SERVER}/{DB}"
EXPORTER = "bench-accountant"


def note(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG")}
    env.update(DATABASE_URL=DATABASE_URL, DJANGO_SETTINGS_MODULE="refundoffice.settings", LOG_LEVEL="WARNING")
    return env


def setup_django() -> None:
    os.environ.update(child_env())
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def refund_count() -> int | None:
    found = subprocess.run(
        ["psql", f"{SERVER}/postgres", "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{DB}'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    if not found:
        return None
    out = subprocess.run(
        ["psql", DATABASE_URL, "-Atc", "SELECT count(*) FROM refunds_refundrequest"], capture_output=True, text=True
    )
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def reset_database() -> None:
    for sql in (f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)', f'CREATE DATABASE "{DB}"'):
        subprocess.run(["psql", f"{SERVER}/postgres", "-qc", sql], check=True)


# Long: one SQL statement per table, read top to bottom; splitting it would hide the load order.
def fill(refunds: int) -> None:
    """Users, payments (one per five refunds), refunds and their approvals, all in SQL."""
    from django.core.management import call_command
    from django.db import connection

    from tests import factories

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    agent = factories.agent(username="bench-agent", first_name="Sam", last_name="Agent")
    m1 = factories.manager(username="bench-manager", first_name="Maria", last_name="Lopez")
    m2 = factories.manager(username="bench-manager2")
    factories.accountant(username=EXPORTER)
    currencies = "ARRAY['USD','USD','EUR','JPY','KWD']"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO refunds_payment (id, provider, connector_transaction_id, amount_minor, currency,
                                         amount_refunded_minor, status, product, customer, synced_at, created_at,
                                         dispute_id, dispute_state, dispute_status, dispute_reason)
            SELECT g, 'stripe', 'pi_bench' || g, 100000, ({currencies})[1 + mod(g, 5)], 0,
                   'succeeded', 'Product ' || mod(g, 50), '', now(), now(), '', '', '', ''
            FROM generate_series(1, %s / 5 + 1) AS g
            """,
            [refunds],
        )
        note("payments inserted")
        cursor.execute(
            f"""
            INSERT INTO refunds_refundrequest (
                id, merchant_refund_id, provider, connector_transaction_id, payment_id, amount_minor, currency,
                reason, reason_code_id, metadata, product, items, status, requested_by_id, request_fingerprint,
                idempotency_key, payment_verified, origin, connector_refund_id, provider_status, error_code,
                error_message, created_at, updated_at, approved_at, resolved_at, submit_attempts, poll_count,
                dispute_overridden)
            SELECT g, 'bench-' || g, 'stripe', 'pi_bench' || (g / 5 + 1), g / 5 + 1, 100 + mod(g::bigint * 7919, 90000),
                   ({currencies})[1 + mod(g / 5 + 1, 5)], 'Customer says: item ' || mod(g, 97) || ' arrived broken',
                   (ARRAY['product_return','goodwill','duplicate_charge','other'])[1 + mod(g, 4)], '{{}}',
                   'Product ' || mod(g, 50), '[]',
                   CASE WHEN mod(g, 20) = 0 THEN 'pending_approval' WHEN mod(g, 20) = 1 THEN 'failed'
                        WHEN mod(g, 20) = 2 THEN 'rejected' ELSE 'succeeded' END,
                   %s, '', 'bench-key-' || g, true, 'app',
                   CASE WHEN mod(g, 20) IN (0, 2) THEN '' ELSE 're_bench' || g END, '', '', '',
                   t.created, t.created,
                   CASE WHEN mod(g, 20) IN (0, 2) THEN NULL ELSE t.created + interval '5 minutes' END,
                   CASE WHEN mod(g, 20) = 0 THEN NULL
                        ELSE t.created + (mod(g, 3000) || ' minutes 17.25 seconds')::interval END,
                   1, 0, ''
            FROM generate_series(1, %s) AS g,
                 LATERAL (SELECT now() - (mod(g, 525600) || ' minutes')::interval AS created) AS t
            """,
            [agent.pk, refunds],
        )
        note("refunds inserted")
        cursor.execute(
            """
            INSERT INTO approvals_approval (refund_id, approver_id, decision, comment, tier, created_at)
            SELECT r.id,
                   CASE WHEN r.status = 'rejected' OR mod(r.id, 10) >= 6 THEN %s END,
                   CASE WHEN r.status = 'rejected' THEN 'rejected' WHEN mod(r.id, 10) < 6 THEN 'auto_approved'
                        ELSE 'approved' END,
                   '', 1, r.created_at + interval '4 minutes'
            FROM refunds_refundrequest r WHERE r.status <> 'pending_approval'
            UNION ALL
            SELECT r.id, %s, 'approved', '', 2, r.created_at + interval '5 minutes'
            FROM refunds_refundrequest r WHERE r.status <> 'pending_approval' AND r.status <> 'rejected'
                                            AND mod(r.id, 10) = 9
            """,
            [m1.pk, m2.pk],
        )
        note("approvals inserted")
        cursor.execute("ANALYZE")


def export_sql() -> str:
    """The app's export query for an accountant with no filters, as literal SQL for psql."""
    # Imported here, not at the top: the app's modules need the settings setup_django() made.
    from django.contrib.auth import get_user_model
    from django.db import connection
    from psycopg import ClientCursor

    from refunds.reports.exports import query as export_query

    user = get_user_model().objects.get(username=EXPORTER)
    qs = export_query.refunds_for_export(user=user, filters={})
    columns = export_query.export_columns()
    names = [f"c{index}" for index in range(len(columns))]
    from django.conf import settings

    query = qs.annotate(**{n: c.sql(settings.REPORTS_TIME_ZONE) for n, c in zip(names, columns, strict=True)})
    sql, params = query.values_list(*names).query.sql_with_params()
    connection.ensure_connection()
    return ClientCursor(connection.connection).mogrify(sql, params).replace("\n", " ")


def run_with_rusage(argv: list[str], env: dict | None = None) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    # Read the output first (the child must not block on a full pipe), then reap it with
    # wait4, which gives this one child's resource usage: its own peak RSS.
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "stdout": out.decode(),
    }


def run_copy(sql: str, path: str) -> dict:
    result = run_with_rusage(["psql", DATABASE_URL, "-qc", f"\\copy ({sql}) to '{path}' with (format csv, header)"])
    result.pop("stdout")
    result["bytes"] = os.path.getsize(path)
    result["lines"] = _lines(path)
    return result


def run_app(mode: str, path: str) -> dict:
    if mode == "job":  # the previous run's file goes first, outside the measurement
        subprocess.run(["psql", DATABASE_URL, "-qc", "DELETE FROM refunds_exportchunk; DELETE FROM refunds_exportjob"], check=True)
    result = run_with_rusage([sys.executable, __file__, "--child", mode, path], env=child_env())
    reported = json.loads(result.pop("stdout").strip().splitlines()[-1])
    result.update(reported)
    if mode == "file":
        result["lines"] = _lines(path)
    return result


def _lines(path: str) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def child(mode: str, path: str) -> None:
    """In the measured process: the app's export, then a JSON line about it."""
    setup_django()
    # Imported after setup_django(): the app's modules need its settings.
    from django.contrib.auth import get_user_model

    from refunds.models import ExportChunk, ExportJob
    from refunds.reports.exports import jobs as export_jobs
    from refunds.reports.exports import query as export_query
    from refunds.reports.exports import writers as export_writers

    user = get_user_model().objects.get(username=EXPORTER)
    started = time.perf_counter()
    if mode == "job":
        job = ExportJob.objects.create(requested_by=user, format=ExportJob.Format.CSV, filters={})
        started = time.perf_counter()
        job = export_jobs.export_job_run(job_id=job.pk)
        seconds = time.perf_counter() - started
        report = {"state": job.state, "rows": job.rows_written, "bytes": job.bytes_written,
                  "chunks": ExportChunk.objects.filter(job=job).count()}
    else:
        with export_jobs.export_reading(user=user, filters={}) as (_, batches), open(path, "wb") as out:
            rows = export_writers.write_csv(batches, export_query.export_headers(), out)
        seconds = time.perf_counter() - started
        report = {"rows": rows, "bytes": os.path.getsize(path)}
    report["export_seconds"] = round(seconds, 2)
    report["self_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report), flush=True)


# Long: a benchmark script's main reads as the run it performs, step by step.
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refunds", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="measured runs of each (after one warm-up COPY)")
    parser.add_argument("--reuse", action="store_true", help="keep the database if it already has --refunds refunds")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    if not (args.reuse and refund_count() == args.refunds):
        reset_database()
        setup_django()
        started = time.perf_counter()
        fill(args.refunds)
        note(f"{args.refunds:,} refunds ready in {time.perf_counter() - started:.0f}s")
    else:
        setup_django()
        note(f"reusing {DB} ({args.refunds:,} refunds)")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM approvals_approval")
        approvals = cursor.fetchone()[0]
    sql = export_sql()
    connection.close()

    results = {"copy": [], "app_job": [], "app_file": []}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as directory:
        copy_path, file_path = f"{directory}/copy.csv", f"{directory}/app.csv"
        note("warm-up COPY")
        run_copy(sql, copy_path)
        for round_ in range(args.repeat):
            for name, run in (
                ("copy", lambda: run_copy(sql, copy_path)),
                ("app_job", lambda: run_app("job", file_path)),
                ("app_file", lambda: run_app("file", file_path)),
            ):
                result = run()
                results[name].append(result)
                note(f"round {round_ + 1} {name}: {result['seconds']}s, peak RSS {result['peak_rss_mb']} MB")

    def best(name):
        return min(results[name], key=lambda r: r["seconds"])

    copy = best("copy")
    report = {
        "refunds": args.refunds,
        "approvals": approvals,
        "copy_rows": copy["lines"] - 1,
        "runs": results,
        "median_seconds": {name: round(statistics.median(r["seconds"] for r in runs), 2) for name, runs in results.items()},
        "ratio_time_app_job_to_copy": round(best("app_job")["seconds"] / copy["seconds"], 2),
        "ratio_time_app_file_to_copy": round(best("app_file")["seconds"] / copy["seconds"], 2),
        "peak_rss_mb": {name: max(r["peak_rss_mb"] for r in runs) for name, runs in results.items()},
    }
    print(json.dumps(report, indent=2))
    print(f"\n{args.refunds:,} refunds ({approvals:,} approvals), best of {args.repeat}:\n")
    print("| export | wall time | ratio to COPY | peak RSS | rows | size |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, label in (
        ("copy", "`psql \\copy (same query) to file csv`"),
        ("app_job", "app export job (CSV into 1 MiB chunks in PostgreSQL)"),
        ("app_file", "app rows + CSV writer into a local file"),
    ):
        run = best(name)
        rows = run.get("rows", run.get("lines", 1) - 1)
        print(
            f"| {label} | {run['seconds']:.1f} s | {run['seconds'] / copy['seconds']:.2f} | "
            f"{report['peak_rss_mb'][name]:.0f} MB | {rows:,} | {run['bytes'] / 1e6:.0f} MB |"
        )


if __name__ == "__main__":
    main()
