"""Sales services: the denominators of refund rates. Every write to Sale goes through here.

Two sources, one table: payments synced from a provider (Stripe's PaymentIntents listed by
date) and sales imported from a CSV file for everything sold elsewhere. Both upsert by
(source, external_id), so running a sync or an import again updates rows, never duplicates.
"""

from __future__ import annotations

import csv
import datetime
import io
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from refunds.models import Sale
from refunds.money import CURRENCY_EXPONENTS, MoneyParseError, is_known_currency, money_parse
from refunds.providers import default_sales_provider_name, get_provider
from refunds.ratelimit import provider_slot_acquire
from refunds.text import FileProblems, is_printable
from refunds.reports.calendar import OUTSIDE_CALENDAR, business_zone, day_start, in_calendar, report_range

logger = logging.getLogger(__name__)

# An import file larger than this is refused before it is read (split it, or sync instead).
SALES_IMPORT_MAX_BYTES = 5 * 1024 * 1024
SALES_IMPORT_COLUMNS = ("sale_id", "sold_at", "product", "amount", "currency")
# Files, unlike people, have one notation whoever uploads them: "." before the decimals, optional
# "," between thousands (1,234.50), the currency's own code or symbol allowed.
SALES_IMPORT_LOCALE = "en_US"
# The most row errors listed back; the count says how many more there were.
SALES_IMPORT_MAX_ERRORS_SHOWN = 50
_UPSERT_BATCH = 1000
_UPDATED_FIELDS = ["product", "amount_minor", "currency", "sold_at", "import_batch", "imported_by"]


@dataclass(frozen=True)
class SalesUpsertResult:
    created: int
    updated: int

    @property
    def total(self) -> int:
        return self.created + self.updated


class SalesSyncUnavailable(Exception):
    pass


class SalesImportError(Exception):
    """The file was refused; nothing was written. `errors` lists each reason, by line."""

    def __init__(self, errors: list[str], *, total_errors: int | None = None):
        self.errors = errors
        self.total_errors = total_errors if total_errors is not None else len(errors)
        super().__init__("; ".join(errors[:5]))


def _sales_upsert(*, source: str, sales: list[Sale]) -> SalesUpsertResult:
    created = updated = 0
    for i in range(0, len(sales), _UPSERT_BATCH):
        batch = sales[i : i + _UPSERT_BATCH]
        existing = set(
            Sale.objects.filter(source=source, external_id__in=[s.external_id for s in batch]).values_list(
                "external_id", flat=True
            )
        )
        Sale.objects.bulk_create(
            batch,
            update_conflicts=True,
            unique_fields=["source", "external_id"],
            update_fields=_UPDATED_FIELDS,
        )
        updated += len(existing)
        created += len(batch) - len(existing)
    return SalesUpsertResult(created=created, updated=updated)


# --- sync from a provider -----------------------------------------------------------------


@dataclass(frozen=True)
class SalesSyncResult(SalesUpsertResult):
    provider: str = ""
    start: datetime.date | None = None
    end: datetime.date | None = None


def sales_sync(*, provider: str = "", start: datetime.date, end: datetime.date) -> SalesSyncResult:
    """Upsert the provider's succeeded payments created in [start, end] (business days) as
    sales; the product is the payment's REPORTS_PRODUCT_METADATA_KEY metadata. Each page
    request books a slot of the provider's shared rate limit. Raises TransientProviderError
    (try later) or PermanentProviderError. No provider named: default_sales_provider_name()."""
    provider = provider or default_sales_provider_name()
    if provider not in Sale.Source.values or provider == Sale.Source.IMPORT:
        raise SalesSyncUnavailable(f"Sales cannot be synced from {provider!r}.")
    adapter = get_provider(provider)
    if not adapter.lists_payments:
        raise SalesSyncUnavailable(f"{provider} cannot list its payments.")
    since, until = report_range(start=start, end=end)
    key = settings.REPORTS_PRODUCT_METADATA_KEY

    def throttle():
        provider_slot_acquire(provider, max_wait=settings.PROVIDER_RATE_MAX_WAIT_SECONDS)

    # The listing happens outside any transaction; each batch is upserted on its own, so a
    # sync cut short keeps what it wrote and the next one completes it.
    created = updated = 0
    pending: list[Sale] = []
    for payment in adapter.list_payments(created_gte=since, created_lt=until, before_request=throttle):
        pending.append(
            Sale(
                source=provider,
                external_id=payment.connector_transaction_id,
                product=str(payment.metadata.get(key, ""))[:200],
                amount_minor=payment.amount.minor_amount,
                currency=payment.amount.currency,
                sold_at=payment.created,
            )
        )
        if len(pending) >= _UPSERT_BATCH:
            result = _sales_upsert(source=provider, sales=pending)
            created, updated, pending = created + result.created, updated + result.updated, []
    if pending:
        result = _sales_upsert(source=provider, sales=pending)
        created, updated = created + result.created, updated + result.updated
    logger.info("sales sync %s %s..%s: %s new, %s updated", provider, start, end, created, updated)
    return SalesSyncResult(created=created, updated=updated, provider=provider, start=start, end=end)


# --- CSV import ---------------------------------------------------------------------------


def _parse_sold_at(value: str) -> datetime.datetime:
    """An ISO date (midnight in REPORTS_TIME_ZONE) or datetime (naive: in REPORTS_TIME_ZONE),
    on a day of the business calendar (ValueError otherwise: 9999-12-31 in a zone behind UTC
    is a moment no datetime holds once it is converted)."""
    value = value.strip()
    if len(value) == 10:
        day = datetime.date.fromisoformat(value)
        if not in_calendar(day):
            raise ValueError(OUTSIDE_CALENDAR)
        return day_start(day)
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if not in_calendar(moment.date()):
        raise ValueError(OUTSIDE_CALENDAR)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=business_zone())
    return moment


def sales_import_parse(*, data: bytes, batch_name: str = "", user=None) -> list[Sale]:
    """Every row of the file as an unsaved Sale, or SalesImportError listing every bad row."""
    reader = _csv_reader(data)
    problems = FileProblems(max_shown=SALES_IMPORT_MAX_ERRORS_SHOWN)
    sales: list[Sale] = []
    seen: dict[str, int] = {}
    for row in _rows(reader, problems):
        line = reader.line_num
        if None in row:
            problems.add(line, "more values than columns.")
            continue
        values = {name: (row.get(name) or "").strip() for name in SALES_IMPORT_COLUMNS}
        if not any(values.values()):
            continue  # a blank line
        reasons: list[str] = [f"{name} contains control characters" for name, text in values.items() if not is_printable(text)]
        if reasons:
            problems.add(line, "; ".join(reasons) + ".")
            continue
        sale_id = values["sale_id"]
        if not sale_id:
            reasons.append("sale_id is empty")
        elif len(sale_id) > 255:
            reasons.append("sale_id is longer than 255 characters")
        elif sale_id in seen:
            reasons.append(f"sale_id {sale_id!r} is also on line {seen[sale_id]}")
        else:
            seen[sale_id] = line
        sold_at = None
        try:
            sold_at = _parse_sold_at(values["sold_at"])
        except ValueError as error:
            reasons.append(
                f"sold_at {values['sold_at']!r}: {error}" if str(error) == OUTSIDE_CALENDAR
                else f"sold_at {values['sold_at']!r} is not an ISO date (2026-01-31) or date-time"
            )
        if len(values["product"]) > 200:
            reasons.append("product is longer than 200 characters")
        currency = values["currency"].upper()
        amount_minor = _parse_amount(values, currency, reasons)
        if reasons:
            problems.add(line, "; ".join(reasons) + ".")
            continue
        sales.append(
            Sale(source=Sale.Source.IMPORT, external_id=sale_id, product=values["product"], amount_minor=amount_minor,
                 currency=currency, sold_at=sold_at, import_batch=batch_name[:200], imported_by=user)
        )
    if problems.total:
        raise SalesImportError(problems.shown, total_errors=problems.total)
    if not sales:
        raise SalesImportError(["The file has no sales (only a header or blank lines)."])
    return sales


def _rows(reader: csv.DictReader, problems: FileProblems):
    """The reader's rows; a row the csv module cannot read (a cell over its field size limit)
    is a problem of its line, and reading stops there."""
    try:
        yield from reader
    except csv.Error as error:
        problems.add(reader.line_num, f"cannot be read as CSV ({error}).")


def _csv_reader(data: bytes) -> csv.DictReader:
    """The file's rows keyed by lower-cased column names, or SalesImportError when the file
    itself is refused (too large, not UTF-8, a column missing)."""
    if len(data) > SALES_IMPORT_MAX_BYTES:
        raise SalesImportError(
            [f"The file is {len(data) / 1024 / 1024:.1f} MB; the limit is {SALES_IMPORT_MAX_BYTES // 1024 // 1024} MB. Split it into smaller files."]
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SalesImportError(["The file is not UTF-8 text. Save it as CSV (UTF-8)."]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    missing = [name for name in SALES_IMPORT_COLUMNS if name not in header]
    if missing:
        raise SalesImportError(
            [f"Line 1: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
             f"(expected: {', '.join(SALES_IMPORT_COLUMNS)})."]
        )
    reader.fieldnames = header
    return reader


def _parse_amount(values: dict[str, str], currency: str, reasons: list[str]) -> int | None:
    """The row's amount in minor units of `currency` (0 allowed: a free sale still counts), read by
    the support form's parser in a fixed notation (SALES_IMPORT_LOCALE); what is wrong is added to
    `reasons`."""
    raw = values["amount"]
    amount_minor = None
    try:
        amount_minor = money_parse(raw, currency=currency, locale=SALES_IMPORT_LOCALE, allow_zero=True)
    except MoneyParseError as error:
        shown = raw if len(raw) <= 40 else f"{raw[:40]}…"
        if error.code == "sign":
            reasons.append(f"amount {shown} is negative" if raw.lstrip().startswith(("-", "−"))
                           else f"amount {shown!r} has a sign; write the amount alone")
        elif error.code == "decimals":
            places = CURRENCY_EXPONENTS[currency]
            reasons.append(f"amount {shown}: {currency} has {places} decimal place{'s' if places != 1 else ''}")
        elif error.code == "other_currency":
            reasons.append(f"amount {shown!r} names another currency than {currency}")
        elif error.code == "too_large":
            reasons.append(f"amount {shown} is too large")
        elif error.code != "unknown_currency":  # said below
            reasons.append(f"amount {shown!r} is not a number")
    if not is_known_currency(currency):
        reasons.append(f"currency {values['currency']!r} is not a known ISO 4217 code")
    return amount_minor


def sales_import_csv(*, data: bytes, batch_name: str = "", user=None) -> SalesUpsertResult:
    """All or nothing: any bad row refuses the whole file (SalesImportError) and writes nothing."""
    sales = sales_import_parse(data=data, batch_name=batch_name, user=user)
    with transaction.atomic():
        result = _sales_upsert(source=Sale.Source.IMPORT, sales=sales)
    logger.info("sales import %r by %s: %s new, %s updated", batch_name, user, result.created, result.updated)
    return result
