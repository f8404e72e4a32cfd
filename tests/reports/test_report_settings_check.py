import subprocess
import sys

import pytest

from refunds.checks import reports_configured


def test_valid_report_settings_pass(settings):
    settings.REPORTS_TIME_ZONE = "America/New_York"
    settings.REPORTS_SUMMARY_SEND_AT = "07:30"
    assert reports_configured() == []


@pytest.mark.parametrize(
    ("zone", "send_at", "expected"),
    [("Mars/Olympus", "08:00", "refunds.E003"), ("UTC", "8 o'clock", "refunds.E004"), ("UTC", "25:00", "refunds.E004")],
)
def test_a_typo_in_report_settings_is_an_error_naming_the_setting(settings, zone, send_at, expected):
    settings.REPORTS_TIME_ZONE = zone
    settings.REPORTS_SUMMARY_SEND_AT = send_at
    [error] = reports_configured()
    assert error.id == expected
    assert ("REPORTS_TIME_ZONE" if expected == "refunds.E003" else "REPORTS_SUMMARY_SEND_AT") in error.msg


def test_empty_send_time_turns_the_morning_summary_off_without_error(settings):
    settings.REPORTS_SUMMARY_SEND_AT = ""
    assert reports_configured() == []


def test_manage_py_refuses_to_start_with_a_bad_send_time():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={**__import__("os").environ, "REPORTS_SUMMARY_SEND_AT": "noon"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "refunds.E004" in result.stderr
