"""Bulk refund files: a RefundBatch (one uploaded CSV) and its RefundBatchRow rows, each with the
dry run's plan and, once filed, the refund it filed. Written by refunds/services/batches.py and
batch_runs.py only."""

from django.conf import settings
from django.db import models


class RefundBatch(models.Model):
    """A CSV file of refunds (refunds/services/batches.py): checked row by row at the provider
    (the dry run), then, once a person confirms it, filed row by row through intake by a worker."""

    class State(models.TextChoices):
        CHECKING = "checking", "Checking (dry run)"
        CHECKED = "checked", "Checked: waiting for confirmation"
        FILING = "filing", "Filing"
        DONE = "done", "Done"
        CANCELED = "canceled", "Discarded"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=200, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CHECKING)
    rows_total = models.PositiveIntegerField(default=0)
    rows_checked = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    # Per currency, minor units: {"USD": {"auto": 0, "approval": 0, "refused": 0}} after the dry run.
    totals = models.JSONField(default=dict, blank=True)
    # A worker's claim: one worker at a time checks or files a batch; a lapsed lease is taken over.
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "lease_until"], name="refundbatch_state_idx")]

    def __str__(self):
        return f"batch {self.pk} ({self.state})"


class RefundBatchRow(models.Model):
    class Plan(models.TextChoices):
        AUTO = "auto", "Auto-approved"
        APPROVAL = "approval", "Needs approval"
        ALREADY = "already", "Already filed"
        REFUSED = "refused", "Refused"

    class Outcome(models.TextChoices):
        WAITING = "", "Not filed yet"
        FILED = "filed", "Filed"
        ALREADY = "already", "Already filed"
        REFUSED = "refused", "Refused"
        SKIPPED = "skipped", "Not filed (refused in the dry run)"

    batch = models.ForeignKey(RefundBatch, on_delete=models.CASCADE, related_name="rows")
    line = models.PositiveIntegerField()
    merchant_refund_id = models.CharField(max_length=64)
    provider = models.CharField(max_length=32)
    connector_transaction_id = models.CharField(max_length=255)
    amount_text = models.CharField(max_length=40, blank=True)
    amount_minor = models.BigIntegerField(null=True, blank=True)  # None: what remains
    currency = models.CharField(max_length=3, blank=True)
    reason_code = models.CharField(max_length=40, blank=True)
    note = models.CharField(max_length=500, blank=True)
    product = models.CharField(max_length=200, blank=True)
    # The dry run's verdict (and the amount it settled on), then the filing's outcome.
    plan = models.CharField(max_length=16, choices=Plan.choices, blank=True)
    planned_minor = models.BigIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True)
    refund = models.ForeignKey("refunds.RefundRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["batch", "line"]
        constraints = [models.UniqueConstraint(fields=["batch", "line"], name="refundbatchrow_line_once")]

    def __str__(self):
        return f"batch {self.batch_id} line {self.line}"
