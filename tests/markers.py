"""Markers shared by test modules."""

import pytest
from django.db import connection

# SQLite lets one writer in at a time, so a race test passes there whether or not our row locks
# work: it would prove nothing. These tests run under PostgreSQL (DATABASE_URL, as .ci/run does).
needs_row_locks = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite admits one writer at a time, so this would pass without our row locks; runs under PostgreSQL",
)
