"""Money, percentages, durations and timestamps as the reports show them. The pages, the
morning Slack summary and the exports all format through here, so a figure reads the same
wherever it appears. (Exports on PostgreSQL compute the same cells in SQL: refunds.reports.
exports.query keeps those twins next to the columns, and a test holds both to one output.)"""

from __future__ import annotations

import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from refunds.money import format_minor, minor_to_decimal

# What a figure with no value (no refunds to average, no sales to divide by) shows.
NONE = "—"


# --- money -----------------------------------------------------------------------------------


def money_display(minor_amount: int | None, currency: str) -> str:
    """1,234.50 USD: grouped, with the currency's own decimal places; "—" for none."""
    return format_minor(minor_amount, currency)


def money_plain(minor_amount: int, currency: str) -> str:
    """1234.50: the exact decimal, no grouping, as a spreadsheet cell reads it."""
    return f"{minor_to_decimal(minor_amount, currency):f}"


def money_major(minor_amount: int, currency: str) -> float:
    """The amount in major units as a number for a chart's axis (the tables show it exactly)."""
    return float(minor_to_decimal(minor_amount, currency))


# --- percentages -----------------------------------------------------------------------------


def percent_value(rate: Decimal | None) -> Decimal | None:
    """A rate (0.256) as a percentage to one decimal (25.6), for tables and charts that show
    the unit themselves; None stays None."""
    return None if rate is None else (rate * 100).quantize(Decimal("0.1"))


def percent_display(rate: Decimal | None) -> str:
    """A rate (0.256) as text: "25.6%"; "—" for none."""
    return NONE if rate is None else f"{percent_value(rate)}%"


# --- durations -------------------------------------------------------------------------------


def duration_display(value: datetime.timedelta | float | None) -> str:
    """A timedelta (or seconds) as "1 d 2 h", "3 h 05 min", "4 min 10 s", "12 s"; "—" for none."""
    if value is None:
        return NONE
    seconds = int(value.total_seconds() if isinstance(value, datetime.timedelta) else value)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def duration_hours(seconds: float | None) -> Decimal | None:
    """Seconds as hours to one decimal (5.2), for a table headed "(hours)"; None stays None."""
    return None if seconds is None else Decimal(seconds / 3600).quantize(Decimal("0.1"))


def duration_hms(seconds: int | None) -> str | None:
    """Whole seconds as H:MM:SS (hours unbounded: 27:04:05), a spreadsheet cell; None stays None."""
    return None if seconds is None else f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# --- timestamps ------------------------------------------------------------------------------


def timestamp_display(value: datetime.datetime | None, zone: ZoneInfo | datetime.tzinfo) -> str | None:
    """2026-03-01 14:05:09 in `zone`; None stays None."""
    return None if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
