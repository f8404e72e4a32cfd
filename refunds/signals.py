from django.dispatch import Signal

# Sent inside the transaction that changed the status, with refund, from_status, to_status,
# actor and log (the RefundLog row that records the change). Receivers must only schedule work
# with transaction.on_commit.
refund_status_changed = Signal()
