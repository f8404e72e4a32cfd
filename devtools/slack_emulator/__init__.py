"""A local stand-in for Slack: the Web API methods Refund Office calls, a page showing the
channel with clickable buttons, and signed interaction payloads sent back to the app."""

DEFAULT_TOKEN = "xoxb-emulator-token"
DEFAULT_SIGNING_SECRET = "emulator-signing-secret"
DEFAULT_TEAM = "T0EMULATOR"
DEFAULT_CHANNEL = "C0APPROVALS"
