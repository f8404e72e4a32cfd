"""System checks: `manage.py check` (and every management command, runserver, migrate) refuses
to start with a provider enabled but not configured, instead of failing mid-refund."""

import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core import checks

from refunds.providers import known_provider_names, provider_class


@checks.register(checks.Tags.compatibility)
def providers_configured(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problems = []
    enabled = list(settings.REFUND_PROVIDERS)
    for name in enabled:
        if name not in known_provider_names():
            problems.append(
                checks.Error(
                    f"REFUND_PROVIDERS names an unknown provider {name!r}.",
                    hint=f"Known providers: {', '.join(known_provider_names())}.",
                    id="refunds.E001",
                )
            )
            continue
        for problem in provider_class(name).check_configuration(settings):
            problems.append(
                checks.Error(
                    f"{name} is enabled but not configured: {problem}",
                    hint=f"Set it in the environment (see .env.example), or remove {name} from REFUND_PROVIDERS.",
                    id="refunds.E002",
                )
            )
    default = settings.REFUND_DEFAULT_PROVIDER
    if enabled and default not in enabled:
        problems.append(
            checks.Error(
                f"REFUND_DEFAULT_PROVIDER {default!r} is not one of REFUND_PROVIDERS ({', '.join(enabled)}).",
                hint="Name an enabled provider, or leave it unset for the first of REFUND_PROVIDERS.",
                id="refunds.E005",
            )
        )
    if not enabled:
        problems.append(
            checks.Warning("REFUND_PROVIDERS is empty: no refund can be filed.", id="refunds.W001")
        )
    return problems


@checks.register(checks.Tags.compatibility)
def reports_configured(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A typo in the business zone or the morning send time is caught at start, not by a
    silent morning without a summary."""
    problems = []
    try:
        ZoneInfo(settings.REPORTS_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            checks.Error(
                f"REPORTS_TIME_ZONE {settings.REPORTS_TIME_ZONE!r} is not a time zone.",
                hint="Use an IANA name such as Europe/Berlin or America/New_York.",
                id="refunds.E003",
            )
        )
    send_at = (settings.REPORTS_SUMMARY_SEND_AT or "").strip()
    if send_at:
        try:
            datetime.time.fromisoformat(send_at)
        except ValueError:
            problems.append(
                checks.Error(
                    f"REPORTS_SUMMARY_SEND_AT {send_at!r} is not a time of day.",
                    hint="Use HH:MM, e.g. 08:00, or leave it empty to send no morning summary.",
                    id="refunds.E004",
                )
            )
    return problems


@checks.register(checks.Tags.compatibility)
def slack_app_configured(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The Slack app needs all three: a bot token without the signing secret posts buttons whose
    clicks are refused; without a channel nothing is posted."""
    if not settings.SLACK_BOT_TOKEN:
        return []
    missing = [name for name in ("SLACK_SIGNING_SECRET", "SLACK_APPROVALS_CHANNEL") if not getattr(settings, name)]
    return [
        checks.Error(
            f"SLACK_BOT_TOKEN is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not.",
            hint="Set the Slack app's signing secret and the approvals channel's id, or unset SLACK_BOT_TOKEN.",
            id="refunds.E101",
        )
    ] if missing else []
