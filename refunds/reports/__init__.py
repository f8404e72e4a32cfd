"""The reporting wing of the `refunds` app: the business calendar, the daily summary, the
dashboard, sales (the refund rate's denominators), exports, the morning Slack summary, and
their pages. Models and migrations stay in `refunds`; import the modules themselves
(`from refunds.reports import summary`), this package re-exports nothing."""
