"""The business calendar: days are days in settings.REPORTS_TIME_ZONE, and a range of days is
[first day 00:00, day after the last 00:00) there. Every report, export, sales sync and the
morning summary count days through here."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

# The longest range the report pages accept, in days.
MAX_RANGE_DAYS = 366
# The days a report, a sale or an export may name. Python's datetimes end at 9999-12-31 and
# begin at 0001-01-01: a range's end (the day after its last day) and a day's midnight in any
# zone (up to ±26 hours off UTC) must convert to UTC and back, so a year is kept at each end.
FIRST_DAY = datetime.date(1900, 1, 1)
LAST_DAY = datetime.date(9998, 12, 31)
OUTSIDE_CALENDAR = f"Choose a day from {FIRST_DAY:%Y-%m-%d} to {LAST_DAY:%Y-%m-%d}."


def in_calendar(day: datetime.date) -> bool:
    return FIRST_DAY <= day <= LAST_DAY


def business_zone(tz: str | None = None) -> ZoneInfo:
    return ZoneInfo(tz or settings.REPORTS_TIME_ZONE)


def business_today(*, tz: str | None = None, now: datetime.datetime | None = None) -> datetime.date:
    return (now or timezone.now()).astimezone(business_zone(tz)).date()


def business_yesterday(*, tz: str | None = None, now: datetime.datetime | None = None) -> datetime.date:
    return business_today(tz=tz, now=now) - datetime.timedelta(days=1)


def day_start(day: datetime.date, *, tz: str | None = None) -> datetime.datetime:
    """Midnight at the start of `day` in the business zone, as an aware datetime."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=business_zone(tz))


def report_range(
    *, start: datetime.date, end: datetime.date, tz: str | None = None
) -> tuple[datetime.datetime, datetime.datetime]:
    """[start 00:00, end+1 00:00) in the business zone (settings.REPORTS_TIME_ZONE when tz is None), as aware datetimes."""
    if not (in_calendar(start) and in_calendar(end)):
        raise ValueError(OUTSIDE_CALENDAR)
    return day_start(start, tz=tz), day_start(end + datetime.timedelta(days=1), tz=tz)


def days_between(start: datetime.date, end: datetime.date) -> list[datetime.date]:
    """Every day from start to end, both included."""
    return [start + datetime.timedelta(days=n) for n in range((end - start).days + 1)]
