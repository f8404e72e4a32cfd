"""The export's file formats: CSV and XLSX, written a batch of finished rows at a time."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable
from decimal import Decimal

import xlsxwriter

from refunds.reports.exports.query import DECIMAL, INTEGER, Column

# Excel's limit per sheet, header included: the export continues on a new sheet.
XLSX_MAX_ROWS = 1_048_576


def write_csv(batches: Iterable[list[tuple]], headers: list[str], out, *, on_batch=None) -> int:
    """CSV (RFC 4180, UTF-8 with a byte order mark so Excel reads accents) into the binary
    stream `out`, one batch at a time. Returns the number of rows."""
    text = io.StringIO()
    writer = csv.writer(text)
    text.write("\ufeff")
    writer.writerow(headers)
    rows = 0
    for batch in batches:
        writer.writerows(batch)
        rows += len(batch)
        out.write(text.getvalue().encode())
        text.seek(0)
        text.truncate()
        if on_batch:
            on_batch(rows)
    out.write(text.getvalue().encode())
    return rows


def write_xlsx(batches: Iterable[list[tuple]], columns: list[Column], path: str, *, on_batch=None) -> int:
    """An XLSX workbook at `path`, written row by row (constant memory); past Excel's
    1,048,576 rows a sheet, the rows continue on a new sheet with the header again."""
    workbook = xlsxwriter.Workbook(path, {"constant_memory": True, "tmpdir": tempfile.gettempdir()})
    bold = workbook.add_format({"bold": True})
    decimals = {places: workbook.add_format({"num_format": "0." + "0" * places if places else "0"}) for places in (0, 1, 2, 3, 4)}
    kinds = [column.kind for column in columns]
    headers = [column.header for column in columns]
    sheet, sheet_row, rows = None, XLSX_MAX_ROWS, 0
    for batch in batches:
        for row in batch:
            if sheet_row >= XLSX_MAX_ROWS:
                count = len(workbook.worksheets())
                sheet = workbook.add_worksheet(f"Refunds {count + 1}" if count else "Refunds")
                sheet.write_row(0, 0, headers, bold)
                sheet_row = 1
            for index, value in enumerate(row):
                if value is None or value == "":
                    continue
                kind = kinds[index]
                if kind == INTEGER:
                    sheet.write_number(sheet_row, index, value)
                elif kind == DECIMAL:
                    places = len(value.partition(".")[2])
                    sheet.write_number(sheet_row, index, _decimal_number(value), decimals.get(places))
                else:
                    sheet.write_string(sheet_row, index, value)
            sheet_row += 1
        rows += len(batch)
        if on_batch:
            on_batch(rows)
    if sheet is None:
        sheet = workbook.add_worksheet("Refunds")
        sheet.write_row(0, 0, headers, bold)
    workbook.close()
    return rows


def _decimal_number(text: str) -> Decimal:
    # A spreadsheet number is a binary double whatever we do; XlsxWriter writes it with 16
    # significant digits, which holds every amount we export exactly as text.
    return Decimal(text)
