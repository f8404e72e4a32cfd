"""Bulk refunds from a CSV file: the file read and checked (refused whole, by line, when it
cannot be read), each row's plan worked out at its provider (the dry run), then, once a person
confirms it, each row filed through `refund_request_create` by a worker (batch_runs.py).

The file's notation is fixed, whoever uploads it (like the sales import): comma-separated,
UTF-8 (a BOM is fine), a header row naming the columns, amounts with "." before the decimals
and optional "," between thousands (1,234.50), the currency's own code or symbol allowed.
"""

from __future__ import annotations

import csv
import hashlib
import io

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from refunds import errors
from refunds.models import RefundBatch, RefundBatchRow, ReasonCode
from refunds.money import MoneyParseError, format_minor_number, is_known_currency, money_parse
from refunds.providers import UnknownProvider, get_provider
from refunds.publish import enqueue_on_commit
from refunds.text import MERCHANT_REFUND_ID, TRANSACTION_ID, FileProblems, is_printable

BATCH_COLUMNS = (
    "merchant_refund_id", "provider", "connector_transaction_id", "amount", "currency", "reason_code", "note", "product",
)
REQUIRED_COLUMNS = ("merchant_refund_id", "provider", "connector_transaction_id")
BATCH_LOCALE = "en_US"
# Every refund a batch files carries this metadata (the same for every upload of a file, so
# uploading it again replays its refunds instead of conflicting with them).
BATCH_METADATA = {"filed_via": "refund batch"}
MAX_ERRORS_SHOWN = 50
# The error code of a row refused by the file alone (before any provider is asked).
ROW_INVALID = "row_invalid"
_LIMITS = {"merchant_refund_id": 64, "connector_transaction_id": 255, "provider": 32, "amount": 40, "currency": 3,
           "reason_code": 40, "note": 500, "product": 200}
# Cells longer than this are not read at all (the csv module's own limit is 128 KiB).
_CELL_LIMIT = 4096


class BatchFileError(errors.RefundError):
    """The file was refused; nothing was filed. `problems` lists each reason, by line."""

    code = "batch_file_invalid"
    http_status = 400

    def __init__(self, problems: list[str], *, total: int | None = None):
        self.problems = problems
        self.total = total if total is not None else len(problems)
        super().__init__(problems[0] if len(problems) == 1 else f"{self.total} problems in the file: {problems[0]}",
                         field="file")


def _max_mb() -> str:
    return f"{settings.REFUND_BATCH_MAX_BYTES / 1024 / 1024:g} MB"


def _text(data: bytes) -> str:
    if not data or not data.strip(b" \t\r\n\xef\xbb\xbf"):
        raise BatchFileError(["The file is empty. It needs a header row (" + ", ".join(BATCH_COLUMNS) + ") and one row per refund."])
    if len(data) > settings.REFUND_BATCH_MAX_BYTES:
        raise BatchFileError([f"The file is {len(data) / 1024 / 1024:.1f} MB; the limit is {_max_mb()}. Split it."])
    if b"\x00" in data:
        raise BatchFileError(["The file is not a text file (it has NUL bytes). Save it as CSV (UTF-8)."])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise BatchFileError([f"Line {line}: the file is not UTF-8 text. Save it as CSV (UTF-8)."]) from None


def _header(reader) -> list[str]:
    try:
        names = next(reader)
    except csv.Error as error:
        raise BatchFileError([f"Line 1: cannot be read as CSV ({error})."]) from None
    except StopIteration:
        names = []
    header = [name.strip().lower() for name in names]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        if len(header) == 1 and any(sep in names[0] for sep in ";\t|"):
            sep = next(sep for sep in ";\t|" if sep in names[0])
            shown = {";": "semicolons", "\t": "tabs", "|": "bars"}[sep]
            raise BatchFileError([f"Line 1: the columns are separated by {shown}; this file must be "
                                  f"comma-separated (columns: {', '.join(BATCH_COLUMNS)})."])
        raise BatchFileError([f"Line 1: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                              f"(expected: {', '.join(BATCH_COLUMNS)})."])
    unknown = [name for name in header if name not in BATCH_COLUMNS]
    if unknown:
        raise BatchFileError([f"Line 1: unknown column {unknown[0][:40]!r} (expected: {', '.join(BATCH_COLUMNS)})."])
    duplicated = next((name for name in header if header.count(name) > 1), None)
    if duplicated:
        raise BatchFileError([f"Line 1: the column {duplicated} appears twice."])
    return header


# A long function: one pass over the file's lines, each check in the order a person fixes them.
def batch_file_parse(*, data: bytes) -> list[RefundBatchRow]:
    """Every row of the file as an unsaved RefundBatchRow, or BatchFileError listing each line
    that cannot be read (wrong shape, missing or over-long values, control characters). Values
    that are readable but wrong (an amount in another notation, an unknown currency, provider or
    reason code, an id used twice) are the row's refusal (plan "refused"), shown in the dry run."""
    text = _text(data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = _header(reader)
    problems = FileProblems(max_shown=MAX_ERRORS_SHOWN)
    rows: list[RefundBatchRow] = []
    seen: dict[str, int] = {}
    codes = set(ReasonCode.objects.filter(active=True).values_list("code", flat=True))
    adapters: dict = {}
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.add(reader.line_num, f"cannot be read as CSV ({str(error)[:120]}).")
            break
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(rows) >= settings.REFUND_BATCH_MAX_ROWS:
            raise BatchFileError([f"Line {line}: the file has more than {settings.REFUND_BATCH_MAX_ROWS:,} rows, "
                                  f"the most one batch may have. Split it."])
        if len(cells) != len(header):
            problems.add(line, f"{len(cells)} values for {len(header)} columns.")
            continue
        if any(len(cell) > _CELL_LIMIT for cell in cells):
            problems.add(line, f"a value is longer than {_CELL_LIMIT:,} characters.")
            continue
        values = {name: "" for name in BATCH_COLUMNS}
        values.update({name: cell.strip() for name, cell in zip(header, cells)})
        reasons = [f"{name} contains control characters" for name, value in values.items() if not is_printable(value)]
        reasons += [f"{name} is empty" for name in REQUIRED_COLUMNS if not values[name]]
        reasons += [f"{name} is longer than {limit} characters" for name, limit in _LIMITS.items()
                    if len(values[name]) > limit and name != "amount"]
        if reasons:
            problems.add(line, "; ".join(reasons) + ".")
            continue
        row = RefundBatchRow(
            line=line,
            merchant_refund_id=values["merchant_refund_id"],
            provider=values["provider"].lower(),
            connector_transaction_id=values["connector_transaction_id"],
            amount_text=values["amount"][:40],
            currency=values["currency"].upper(),
            reason_code=values["reason_code"],
            note=values["note"],
            product=values["product"],
        )
        refusal = _row_refusal(row, values=values, seen=seen, codes=codes, adapters=adapters)
        if refusal:
            row.plan, row.message, row.error_code = RefundBatchRow.Plan.REFUSED, refusal[:500], ROW_INVALID
        rows.append(row)
    if problems.total:
        raise BatchFileError(problems.shown, total=problems.total)
    if not rows:
        raise BatchFileError(["The file has no refunds (only a header or blank lines)."])
    return rows


def _row_refusal(row: RefundBatchRow, *, values: dict, seen: dict[str, int], codes: set[str], adapters: dict) -> str:
    """Why the row cannot be filed, from the file alone ("" when it may be)."""
    if not MERCHANT_REFUND_ID.match(row.merchant_refund_id):
        return "merchant_refund_id may have letters, digits and . _ : - (starting with a letter or digit)."
    if row.merchant_refund_id in seen:
        return f"duplicate id: merchant_refund_id {row.merchant_refund_id} is also on line {seen[row.merchant_refund_id]}."
    seen[row.merchant_refund_id] = row.line
    try:
        # One adapter per provider for the whole file (building one per row is most of a row's cost).
        if row.provider not in adapters:
            adapters[row.provider] = get_provider(row.provider)
        adapter = adapters[row.provider]
    except UnknownProvider:
        return f"unknown provider {row.provider[:32]!r}."
    if not TRANSACTION_ID.match(row.connector_transaction_id):
        return f"{row.connector_transaction_id[:60]!r} is not a payment id."
    wrong = adapter.validate_transaction_id(row.connector_transaction_id)
    if wrong:
        return f"connector_transaction_id: {wrong}"
    if row.reason_code and row.reason_code not in codes:
        return f"unknown reason code {row.reason_code!r}."
    if row.currency and not is_known_currency(row.currency):
        return f"currency {values['currency'][:10]!r} is not a known ISO 4217 code."
    if values["amount"]:
        if not row.currency:
            return "an amount needs its currency (the currency column is empty)."
        try:
            row.amount_minor = money_parse(values["amount"], currency=row.currency, locale=BATCH_LOCALE)
        except MoneyParseError as error:
            return f"amount: {error}"
    return ""


def refund_batch_create(*, user, data: bytes, file_name: str = "") -> RefundBatch:
    """Read the file (BatchFileError: nothing kept) and queue its dry run. Nothing is filed."""
    if not user.has_perm("refunds.add_refundrequest"):
        raise errors.PermissionDenied("You may not file refund requests.")
    rows = batch_file_parse(data=data)
    with transaction.atomic():
        batch = RefundBatch.objects.create(
            created_by=user, file_name=file_name[:200], file_sha256=hashlib.sha256(data).hexdigest(),
            rows_total=len(rows), rows_checked=sum(1 for row in rows if row.plan),
        )
        for row in rows:
            row.batch = batch
        RefundBatchRow.objects.bulk_create(rows, batch_size=1000)
        enqueue_on_commit("refund_batch_run_task", batch.pk)
    return batch


def refund_batch_confirm(*, batch_id: int, user) -> RefundBatch:
    """The person who uploaded it files the checked batch: a worker files each row the dry run
    did not refuse. Confirming twice (a double click) files nothing twice."""
    with transaction.atomic():
        batch = RefundBatch.objects.select_for_update(of=("self",)).get(pk=batch_id)
        if batch.created_by_id != user.pk:
            raise errors.PermissionDenied("Only the person who uploaded a batch may file it.")
        if batch.state in (RefundBatch.State.FILING, RefundBatch.State.DONE):
            return batch
        if batch.state != RefundBatch.State.CHECKED:
            raise errors.InvalidTransition(
                f"The batch is {batch.get_state_display().lower()}; only a checked batch can be filed.",
                code="batch_not_checked",
            )
        batch.rows.filter(plan=RefundBatchRow.Plan.REFUSED).update(outcome=RefundBatchRow.Outcome.SKIPPED)
        batch.state, batch.confirmed_at = RefundBatch.State.FILING, timezone.now()
        batch.rows_done = batch.rows.exclude(outcome="").count()
        batch.save(update_fields=["state", "confirmed_at", "rows_done"])
        enqueue_on_commit("refund_batch_run_task", batch.pk)
    return batch


def refund_batch_discard(*, batch_id: int, user) -> RefundBatch:
    with transaction.atomic():
        batch = RefundBatch.objects.select_for_update(of=("self",)).get(pk=batch_id)
        if batch.created_by_id != user.pk:
            raise errors.PermissionDenied("Only the person who uploaded a batch may discard it.")
        if batch.state not in (RefundBatch.State.CHECKING, RefundBatch.State.CHECKED):
            raise errors.InvalidTransition("A batch being filed or filed cannot be discarded.", code="batch_not_checked")
        batch.state = RefundBatch.State.CANCELED
        batch.save(update_fields=["state"])
    return batch


RESULT_COLUMNS = ("line", "merchant_refund_id", "provider", "connector_transaction_id", "amount", "currency",
                  "dry_run", "outcome", "refund_status", "error_code", "message")


class _Echo:
    def write(self, value):
        return value


def batch_results_csv(batch: RefundBatch):
    """The per-row results as CSV lines (the support tool reads them), amounts in the file's notation."""
    writer = csv.writer(_Echo())
    yield writer.writerow(RESULT_COLUMNS)
    rows = batch.rows.select_related("refund").order_by("line")
    for row in rows.iterator(chunk_size=1000):
        refund = row.refund
        minor = refund.amount_minor if refund else row.planned_minor if row.planned_minor is not None else row.amount_minor
        currency = (refund.currency if refund else row.currency) or ""
        amount = format_minor_number(minor, currency, BATCH_LOCALE) if minor is not None and currency else ""
        yield writer.writerow([_cell(value) for value in (
            row.line, row.merchant_refund_id, row.provider, row.connector_transaction_id, amount, currency,
            row.plan, row.outcome, refund.status if refund else "", row.error_code, row.message,
        )])


def _cell(value):
    """Text a spreadsheet would run as a formula is written as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
