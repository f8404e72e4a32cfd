"""The export's file formats: CSV and XLSX, written a batch of finished rows at a time."""

from __future__ import annotations

import csv
import datetime
import io
import tempfile
from collections.abc import Iterable
from decimal import Decimal

import xlsxwriter

from refunds.reports.exports.query import DECIMAL, DURATION, INTEGER, TIMESTAMP, Column

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


# Column widths in characters: wide enough for the values a kind holds, at most 48 for text.
_WIDTHS = {INTEGER: 14, DECIMAL: 12, TIMESTAMP: 19, DURATION: 11}


def write_xlsx(batches: Iterable[list[tuple]], columns: list[Column], path: str, *, on_batch=None) -> int:
    """An XLSX workbook at `path`, written row by row (constant memory); past Excel's
    1,048,576 rows a sheet, the rows continue on a new sheet with the header again. Dates are
    spreadsheet date-times and durations spreadsheet durations (they sort and sum), the header
    row is frozen and filterable."""
    workbook = xlsxwriter.Workbook(path, {"constant_memory": True, "tmpdir": tempfile.gettempdir()})
    formats = _XlsxFormats(workbook)
    kinds = [column.kind for column in columns]
    sheet, sheet_row, rows = None, XLSX_MAX_ROWS, 0
    for batch in batches:
        for row in batch:
            if sheet_row >= XLSX_MAX_ROWS:
                _finish_sheet(sheet, sheet_row, len(columns))
                sheet, sheet_row = _new_sheet(workbook, columns, formats), 1
            for index, value in enumerate(row):
                if value is not None and value != "":
                    _write_cell(sheet, sheet_row, index, kinds[index], value, formats)
            sheet_row += 1
        rows += len(batch)
        if on_batch:
            on_batch(rows)
    if sheet is None:
        sheet, sheet_row = _new_sheet(workbook, columns, formats), 1
    _finish_sheet(sheet, sheet_row, len(columns))
    workbook.close()
    return rows


class _XlsxFormats:
    def __init__(self, workbook):
        self.header = workbook.add_format({"bold": True, "bottom": 1})
        self.decimals = {
            places: workbook.add_format({"num_format": "0." + "0" * places if places else "0"}) for places in range(5)
        }
        self.timestamp = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.duration = workbook.add_format({"num_format": "[h]:mm:ss"})


def _new_sheet(workbook, columns: list[Column], formats: _XlsxFormats):
    count = len(workbook.worksheets())
    sheet = workbook.add_worksheet(f"Refunds {count + 1}" if count else "Refunds")
    for index, column in enumerate(columns):
        sheet.set_column(index, index, min(max(len(column.header) + 2, _WIDTHS.get(column.kind, 12)), 48))
    sheet.write_row(0, 0, [column.header for column in columns], formats.header)
    sheet.freeze_panes(1, 0)
    return sheet


def _finish_sheet(sheet, rows_on_sheet: int, column_count: int) -> None:
    if sheet is not None:
        sheet.autofilter(0, 0, max(rows_on_sheet - 1, 0), column_count - 1)


def _write_cell(sheet, row: int, index: int, kind: str, value, formats: _XlsxFormats) -> None:
    if kind == INTEGER:
        sheet.write_number(row, index, value)
    elif kind == DECIMAL:
        places = len(value.partition(".")[2])
        sheet.write_number(row, index, _decimal_number(value), formats.decimals.get(places))
    elif kind == TIMESTAMP:
        sheet.write_datetime(row, index, datetime.datetime.strptime(value, "%Y-%m-%d %H:%M:%S"), formats.timestamp)
    elif kind == DURATION:
        hours, minutes, seconds = (int(part) for part in value.split(":"))
        sheet.write_number(row, index, (hours * 3600 + minutes * 60 + seconds) / 86400, formats.duration)
    else:
        sheet.write_string(row, index, value)


def _decimal_number(text: str) -> Decimal:
    # A spreadsheet number is a binary double whatever we do; XlsxWriter writes it with 16
    # significant digits, which holds every amount we export exactly as text.
    return Decimal(text)
