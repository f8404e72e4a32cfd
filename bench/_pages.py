"""Shared by the in-process page benchmarks (admin_pages.py, reports.py): a database of
their own on the local PostgreSQL, and Django set up on it."""

import os
import subprocess

SERVER = "postgres://postgres@127.0.0.1:5432"


def reset_database(db: str) -> None:
    for sql in (f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", f"CREATE DATABASE {db}"):
        subprocess.run(["psql", f"{SERVER}/postgres", "-qc", sql], check=True)


def setup_django(db: str, **env: str) -> None:
    """Django on `db`, migrated, with `env` as extra settings from the environment."""
    os.environ["DATABASE_URL"] = f"{SERVER}/{db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refundoffice.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.update(env)
    os.environ.pop("DJANGO_DEBUG", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
