"""Every write to a refund, one room per purpose.

- transitions: the one door. `refund_create` is the only creator of refund rows and
  `refund_transition` the only writer of `status`; both append to the RefundLog.
- payments: the payment row lock and the refundable sums.
- intake: filing a refund (validation, idempotent replay, auto-approval).
- execution: approved refunds at the provider (claim, call, record the answer, sync, retry, cancel).
- dispatch: the beat's sweep of what the database says is due.
- webhooks: provider events, stored once and reconciled against the provider.

A provider is never called inside a database transaction; services never import tasks
(they publish by name through refunds.publish).
"""
