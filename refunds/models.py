from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from refunds.money import format_minor
from refunds.slack.models import SlackApprovalMessage, SlackIdentity, SlackInteraction, SlackReminder  # noqa: F401


class RefundStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved", "Approved"
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    CANCELED = "canceled", "Canceled"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"


FINAL_STATUSES = frozenset(
    {RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.REJECTED, RefundStatus.CANCELED}
)

# The one table of allowed moves. A final status has no way out.
ALLOWED_TRANSITIONS = {
    # needs_attention: a dispute opened on the payment while it waited (refunds.services.disputes).
    RefundStatus.PENDING_APPROVAL: {
        RefundStatus.APPROVED,
        RefundStatus.REJECTED,
        RefundStatus.CANCELED,
        RefundStatus.NEEDS_ATTENTION,
    },
    RefundStatus.APPROVED: {
        RefundStatus.PROCESSING,
        RefundStatus.FAILED,
        RefundStatus.CANCELED,
        RefundStatus.NEEDS_ATTENTION,
    },
    RefundStatus.PROCESSING: {
        RefundStatus.SUCCEEDED,
        RefundStatus.FAILED,
        RefundStatus.CANCELED,
        RefundStatus.NEEDS_ATTENTION,
    },
    RefundStatus.NEEDS_ATTENTION: {
        # Back to a person's approval: a refund flagged before anyone approved it (Retry).
        RefundStatus.PENDING_APPROVAL,
        RefundStatus.APPROVED,
        RefundStatus.PROCESSING,
        RefundStatus.SUCCEEDED,
        RefundStatus.FAILED,
        RefundStatus.CANCELED,
    },
}

# Moves out of a final status that only the provider's word can make: a refund reported
# succeeded can fail later (the customer's bank returns it).
PROVIDER_CORRECTIONS = {RefundStatus.SUCCEEDED: {RefundStatus.FAILED}}

# Refunds whose money is still (or may still be) on its way out: they count against a
# payment's refundable remainder.
OPEN_STATUSES = frozenset(
    {
        RefundStatus.PENDING_APPROVAL,
        RefundStatus.APPROVED,
        RefundStatus.PROCESSING,
        RefundStatus.NEEDS_ATTENTION,
    }
)


class Payment(models.Model):
    """A payment at a provider, as last seen. Its row is also the lock that serialises
    refunds against one payment, so concurrent partial refunds can never exceed it."""

    provider = models.CharField(max_length=32)
    connector_transaction_id = models.CharField(max_length=255)
    amount_minor = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    amount_refunded_minor = models.BigIntegerField(default=0)
    status = models.CharField(max_length=32, blank=True)
    product = models.CharField(max_length=200, blank=True)
    customer = models.CharField(max_length=255, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The payment's latest dispute (chargeback or inquiry), as its provider last described it;
    # empty when it has none or the provider does not report disputes.
    dispute_id = models.CharField(max_length=255, blank=True)
    # DisputeState: open / won / lost / closed.
    dispute_state = models.CharField(max_length=16, blank=True)
    dispute_status = models.CharField(max_length=32, blank=True)  # the provider's own word
    dispute_reason = models.CharField(max_length=64, blank=True)
    dispute_amount_minor = models.BigIntegerField(null=True, blank=True)
    dispute_opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "connector_transaction_id"], name="payment_unique_per_provider")
        ]
        # Partial: a customer is only ever looked up when known (migration 0016 says why).
        indexes = [models.Index(fields=["customer"], condition=~Q(customer=""), name="payment_customer_idx")]

    def __str__(self):
        return f"{self.provider}:{self.connector_transaction_id}"

    @property
    def dispute_open(self) -> bool:
        return self.dispute_state == "open"


class PaymentAlias(models.Model):
    """Another id the provider gives the same payment (Stripe: the Charge of a PaymentIntent,
    whose id is the payment's). Intake finds the payment's row by either, so the row lock and
    the refundable remainder hold whichever id a refund is filed under."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="aliases")
    provider = models.CharField(max_length=32)
    connector_transaction_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "connector_transaction_id"], name="payment_alias_once")
        ]

    def __str__(self):
        return f"{self.provider}:{self.connector_transaction_id} → {self.payment_id}"


class ReasonCode(models.Model):
    """Why money went back, in the accounting's words. Editable in the admin; a retired code
    is made inactive, never deleted, so old refunds keep it."""

    code = models.SlugField(max_length=40, unique=True)
    label = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["position", "label"]

    def __str__(self):
        return self.label


class RefundOrigin(models.TextChoices):
    APP = "app", "Refund Office"
    EXTERNAL = "external", "Outside Refund Office"


class RefundRequest(models.Model):
    merchant_refund_id = models.CharField(max_length=64, unique=True)
    provider = models.CharField(max_length=32)
    connector_transaction_id = models.CharField(max_length=255)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=500, blank=True)
    reason_code = models.ForeignKey(
        ReasonCode, null=True, blank=True, on_delete=models.PROTECT, to_field="code", related_name="+"
    )
    metadata = models.JSONField(default=dict, blank=True)
    product = models.CharField(max_length=200, blank=True)
    # Invoice lines refunded, for providers that take them (LineItem.as_dict(); their costs
    # add up to the amount): [{"name", "quantity", "cost": {"minor_amount", "currency"}, "tax"}].
    items = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=32, choices=RefundStatus.choices, default=RefundStatus.PENDING_APPROVAL)
    # Empty only for refunds made outside Refund Office (e.g. in the Stripe dashboard).
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # sha256 of the request as filed: a replay with the same body is the same refund.
    request_fingerprint = models.CharField(max_length=64)
    # Sent with every provider call for this refund: a retried or duplicated task reuses it,
    # so the provider creates one refund however often we ask.
    idempotency_key = models.CharField(max_length=80, unique=True)
    payment_verified = models.BooleanField(default=False)
    origin = models.CharField(max_length=16, choices=RefundOrigin.choices, default=RefundOrigin.APP)

    connector_refund_id = models.CharField(max_length=255, blank=True)
    provider_status = models.CharField(max_length=32, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)

    created_at = models.DateTimeField(default=timezone.now, editable=False)  # given: one instant with approved_at
    updated_at = models.DateTimeField(auto_now=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    submit_attempts = models.PositiveIntegerField(default=0)
    # Set while a create call to the provider is in flight: the lease that keeps a duplicate
    # task from calling at the same time. Cleared when the call's outcome is recorded.
    call_started_at = models.DateTimeField(null=True, blank=True)
    # When the dispatcher should next look at this refund (submit, resume or poll).
    next_action_at = models.DateTimeField(null=True, blank=True)
    poll_count = models.PositiveIntegerField(default=0)
    # Create calls that may have reached the provider and whose outcome nobody has heard yet,
    # since a person last checked at the provider (outcome_checked_at). Above one, a provider
    # without idempotent creates may already have refunded: look before asking again.
    # db_default too: rows inserted by code that predates the column (a rolling deploy) or by SQL.
    unconfirmed_calls = models.PositiveSmallIntegerField(default=0, db_default=0)
    outcome_checked_at = models.DateTimeField(null=True, blank=True)
    # When a dispute opened on the payment after this refund had succeeded: the customer has
    # the money back and is asking their bank for it again (money at risk twice).
    disputed_at = models.DateTimeField(null=True, blank=True)
    # The dispute a finance manager filed this refund despite (dispute_override_reason): later
    # news of that same dispute does not hold the refund back again.
    dispute_overridden = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("approve_refundrequest", "Can approve or reject refund requests"),
            ("retry_refundrequest", "Can retry or cancel refund requests"),
            ("view_all_refundrequests", "Can see refund requests filed by anyone"),
            ("view_reports", "Can see reports, the daily summary and the dashboard"),
            ("export_refundrequests", "Can export refunds (CSV, XLSX)"),
            ("override_dispute_refundrequest", "Can file a refund on a disputed payment, with a reason"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=RefundStatus.values), name="refund_status_known"),
            # No default provider on the model: whoever files a refund names it.
            models.CheckConstraint(condition=~Q(provider=""), name="refund_provider_named"),
            models.UniqueConstraint(
                fields=["provider", "connector_refund_id"],
                condition=~Q(connector_refund_id=""),
                name="refund_connector_id_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_action_at"], name="refund_due_idx"),
            models.Index(fields=["status", "created_at"], name="refund_status_created_idx"),
            models.Index(fields=["requested_by", "created_at"], name="refund_requester_idx"),
            models.Index(fields=["provider", "connector_transaction_id"], name="refund_txn_idx"),
            models.Index(fields=["currency"], name="refund_currency_idx"),
            models.Index(fields=["created_at"], name="refund_created_idx"),
            models.Index(fields=["resolved_at"], name="refund_resolved_idx"),
            models.Index(fields=["product", "created_at"], name="refund_product_idx"),
            models.Index(fields=["disputed_at"], condition=Q(disputed_at__isnull=False), name="refund_disputed_idx"),
            models.Index(
                fields=["unconfirmed_calls"], condition=Q(unconfirmed_calls__gt=0), name="refund_unconfirmed_idx"
            ),
        ]

    def __str__(self):
        return self.merchant_refund_id

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def amount_display(self) -> str:

        return format_minor(self.amount_minor, self.currency)


class RefundLogQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("RefundLog is append-only")

    def delete(self):
        raise TypeError("RefundLog is append-only")


class RefundLog(models.Model):
    """Append-only history of a refund: every transition and every provider answer."""

    class Event(models.TextChoices):
        REQUESTED = "requested", "Requested"
        STATUS_CHANGED = "status_changed", "Status changed"
        PROVIDER_CALL = "provider_call", "Provider call"
        PROVIDER_ANSWER = "provider_answer", "Provider answer"
        PROVIDER_ERROR = "provider_error", "Provider error"
        NOTE = "note", "Note"

    refund = models.ForeignKey(RefundRequest, on_delete=models.PROTECT, related_name="logs")
    event = models.CharField(max_length=32, choices=Event.choices)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    message = models.CharField(max_length=1000, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = RefundLogQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.refund_id} {self.event} {self.to_status}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("RefundLog is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("RefundLog is append-only")


class WebhookEvent(models.Model):
    """A provider event as received, once per event id: replays are recognised and ignored."""

    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once"),
        ]
        indexes = [models.Index(fields=["processed_at", "received_at"], name="webhook_unprocessed_idx")]

    def __str__(self):
        return f"{self.provider} {self.type} {self.event_id}"


class ApiToken(models.Model):
    """An API key, stored only as its sha256: the key is shown once, when created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    # When the token's user last confirmed with their authenticator through it (refunds.second_factor).
    second_factor_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.prefix}… ({self.user})"


class Sale(models.Model):
    """A sale: the denominator of a product's refund rate. Synced from a provider (Stripe's
    payments listed by date) or imported from a CSV file for sales made elsewhere."""

    class Source(models.TextChoices):
        STRIPE = "stripe", "Synced from Stripe"
        IMPORT = "import", "CSV import"

    source = models.CharField(max_length=16, choices=Source.choices)
    # The provider's payment id, or the import's own sale id: one row per sale, however
    # often a sync or an import runs again.
    external_id = models.CharField(max_length=255)
    product = models.CharField(max_length=200, blank=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    sold_at = models.DateTimeField()
    # The CSV file a sale came from (empty for synced sales).
    import_batch = models.CharField(max_length=200, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sold_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="sale_once_per_source"),
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="sale_amount_not_negative"),
        ]
        indexes = [
            models.Index(fields=["sold_at"], name="sale_sold_idx"),
            models.Index(fields=["product", "sold_at"], name="sale_product_idx"),
        ]

    def __str__(self):
        return f"{self.source}:{self.external_id}"


class ExportJob(models.Model):
    """One export of refunds, run by a worker. The file is kept in the database in chunks,
    so any web process can serve it whichever machine wrote it."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel (XLSX)"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    format = models.CharField(max_length=8, choices=Format.choices)
    # The filters as the export form cleaned them (JSON-safe: dates as ISO strings).
    filters = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    rows_expected = models.BigIntegerField(null=True, blank=True)
    rows_written = models.BigIntegerField(default=0)
    bytes_written = models.BigIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Heartbeat of the worker writing it: a job whose worker died is started again.
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "progress_at"], name="export_state_idx")]

    def __str__(self):
        return f"export {self.pk} ({self.format}, {self.state})"


class ExportChunk(models.Model):
    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="chunks")
    seq = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        ordering = ["job", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="export_chunk_once")]


class SummaryDelivery(models.Model):
    """One row per day whose summary was sent to Slack. The sender claims the day by
    inserting the row, so however many beats run, the morning message goes out once."""

    day = models.DateField(unique=True)
    claimed_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self):
        return f"summary {self.day}"


# Bulk refund files (refunds/services/batches.py) live in their own module; imported here so
# Django finds them with the app's other models.
from refunds.models_batches import RefundBatch, RefundBatchRow  # noqa: E402,F401
