"""Hypothesis against the sales CSV import: whatever the rows hold, the file is either imported
(each row a valid sale, exactly as written) or refused with row errors, never an exception, and
a refused file writes nothing."""

import collections
import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings, strategies as st

from refunds.models import Sale
from refunds.money import CURRENCY_EXPONENTS, MAX_MINOR_AMOUNT
from refunds.reports import sales
from refunds.reports.calendar import FIRST_DAY, LAST_DAY
from tests.hostile.values import HOSTILE

pytestmark = pytest.mark.django_db
HOSTILE_TEXT = st.sampled_from([v for values in HOSTILE.values() for v in values if len(v) < 1000])

sale_ids = st.one_of(st.text(min_size=1, max_size=20), st.from_regex(r"INV-[0-9]{1,6}", fullmatch=True), HOSTILE_TEXT)
days = st.dates(min_value=datetime.date(1, 1, 1)).map(datetime.date.isoformat)
moments = st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(datetime.datetime.isoformat)
amounts = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.decimals(min_value=0, max_value=10**9, places=2).map(str),
    st.sampled_from(["1e999999", "-1e999999", "1e-999999", "0E+999999", "12.50", "1,000.00", "0x10"]),
    HOSTILE_TEXT,
)
currencies = st.one_of(st.sampled_from(["USD", "JPY", "KWD", "usd", "XXX", "", "US"]), HOSTILE_TEXT)
any_row = st.fixed_dictionaries({
    "sale_id": sale_ids, "sold_at": st.one_of(days, moments, HOSTILE_TEXT), "product": st.one_of(st.text(max_size=40), HOSTILE_TEXT),
    "amount": amounts, "currency": currencies,
})
good_row = st.fixed_dictionaries({
    "sale_id": st.from_regex(r"INV-[0-9]{1,8}", fullmatch=True),
    "sold_at": st.dates(datetime.date(2000, 1, 1), datetime.date(2030, 12, 31)).map(datetime.date.isoformat),
    "product": st.text(st.characters(categories=["L", "N", "Zs"]), max_size=40),
    "amount": st.decimals(min_value=0, max_value=10**6, places=2).map(str),
    "currency": st.sampled_from(["USD", "eur", "KWD"]),
})
rows = st.lists(st.one_of(good_row, good_row, any_row), min_size=1, max_size=4)


def _file(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=sales.SALES_IMPORT_COLUMNS, quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


def _snapshot():
    return sorted(Sale.objects.values_list("source", "external_id", "amount_minor", "currency", "sold_at", "product"))


def test_any_rows_are_imported_exactly_or_refused_by_line_with_nothing_written():
    outcomes = collections.Counter()
    _import_any_rows(outcomes)
    # Both ways out were taken: the strategy is not all garbage, nor all good.
    assert outcomes["imported"] >= 10 and outcomes["refused"] >= 10, outcomes


@given(rows=rows)
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def _import_any_rows(outcomes, rows):
    before = _snapshot()
    with transaction.atomic():
        try:
            result = sales.sales_import_csv(data=_file(rows), batch_name="hypothesis.csv")
        except sales.SalesImportError as error:
            assert error.errors and all(isinstance(e, str) and e for e in error.errors)
            assert _snapshot() == before
            outcomes["refused"] += 1
        else:
            outcomes["imported"] += 1
            stored = {s.external_id: s for s in Sale.objects.filter(source=Sale.Source.IMPORT)}
            assert result.total == len(rows)
            for row in rows:
                sale = stored[row["sale_id"].strip()]
                currency = row["currency"].strip().upper()
                assert sale.currency == currency
                assert sale.amount_minor == Decimal(row["amount"].strip()).scaleb(CURRENCY_EXPONENTS[currency])
                assert 0 <= sale.amount_minor <= MAX_MINOR_AMOUNT
                assert sale.product == row["product"].strip()
                assert FIRST_DAY - datetime.timedelta(days=2) <= sale.sold_at.date() <= LAST_DAY + datetime.timedelta(days=2)
        transaction.set_rollback(True)
    assert _snapshot() == before
