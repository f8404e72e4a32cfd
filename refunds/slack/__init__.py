"""The Slack app: approval messages with buttons, interactions, links between Slack and app users."""
