"""The Slack Web API client (slack_sdk), configured from settings: bot token, base URL (Slack, or
the local emulator), timeout. Every call the app makes goes through `web_client()`."""

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

# What a Slack call may raise: an error answer (SlackApiError), or no answer at all (URLError,
# timeouts and refused connections are OSErrors).
SLACK_ERRORS = (SlackClientError, OSError)


def slack_app_enabled() -> bool:
    return bool(settings.SLACK_BOT_TOKEN and settings.SLACK_APPROVALS_CHANNEL)


def web_client() -> WebClient:
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_BASE.rstrip("/") + "/",
        timeout=max(1, round(settings.SLACK_TIMEOUT_SECONDS)),
    )
