"""The report pages' forms. One date range (DateRangeForm, and check_date_range for forms
with more than one range) serves the summary, the dashboard, the sales sync and the exports:
whole days in the business zone, both ends included, the end not before the start, and at
most `max_days` of them."""

from __future__ import annotations

import datetime

from django import forms

from refunds.admin_scale import distinct_values
from refunds.models import ExportJob, ReasonCode, RefundOrigin, RefundRequest, RefundStatus, Sale
from refunds.money import is_known_currency
from refunds.reports import sales
from refunds.reports.calendar import MAX_RANGE_DAYS, OUTSIDE_CALENDAR, in_calendar
from refunds.reports.exports.query import FILTER_KEYS

# The Stripe sync button runs in the request: a month of payments is a few dozen pages.
SYNC_MAX_DAYS = 31

DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
END_BEFORE_START = "The end date is before the start date."


class BusinessDateField(forms.DateField):
    """A day the business calendar holds (refunds.reports.calendar.FIRST_DAY to LAST_DAY): the
    one date field of every report form, so no range reaches the ends of Python's calendar."""

    widget = DATE_WIDGET

    def validate(self, value):
        super().validate(value)
        if value is not None and not in_calendar(value):
            raise forms.ValidationError(OUTSIDE_CALENDAR, code="outside_calendar")


def check_date_range(
    form: forms.Form,
    start_field: str,
    end_field: str,
    *,
    max_days: int | None = None,
    too_long: str = "The range covers {days} days; pick at most {max_days} days.",
    order_error_field: str | None = None,
) -> None:
    """Add the form's error when its range [start_field, end_field] runs backwards (on
    `order_error_field`, or above the form) or covers more than `max_days` days (above the
    form; `too_long` may name {days}, {max_days}, {start} and {end})."""
    start: datetime.date | None = form.cleaned_data.get(start_field)
    end: datetime.date | None = form.cleaned_data.get(end_field)
    if not (start and end):
        return
    if end < start:
        form.add_error(order_error_field, END_BEFORE_START)
        return
    days = (end - start).days + 1
    if max_days is not None and days > max_days:
        form.add_error(None, too_long.format(days=days, max_days=max_days, start=start, end=end))


class DateRangeForm(forms.Form):
    """From – to (inclusive), at most `max_days` days: the summary page's range."""

    start = BusinessDateField(label="From", widget=DATE_WIDGET)
    end = BusinessDateField(label="To (inclusive)", widget=DATE_WIDGET)
    max_days = MAX_RANGE_DAYS
    too_long = "The range covers {days} days; pick at most {max_days} days."
    # Where "the end is before the start" shows: None puts it above the form.
    order_error_field: str | None = None

    def clean(self):
        data = super().clean()
        check_date_range(
            self,
            "start",
            "end",
            max_days=self.max_days,
            too_long=self.too_long,
            order_error_field=self.order_error_field,
        )
        return data


class SalesSyncForm(DateRangeForm):
    max_days = SYNC_MAX_DAYS


class DashboardRangeForm(DateRangeForm):
    """The dashboard's range and the daily volume's measure ("count" or a currency)."""

    end = BusinessDateField(label="To", widget=DATE_WIDGET)
    measure = forms.CharField(label="Daily volume in", required=False, max_length=5)
    too_long = "Choose at most {max_days} days; {start:%Y-%m-%d} to {end:%Y-%m-%d} is {days} days."
    order_error_field = "end"

    def clean_measure(self):
        measure = (self.cleaned_data.get("measure") or "count").strip()
        if measure != "count" and not is_known_currency(measure.upper()):
            raise forms.ValidationError("Choose “Number of refunds” or a currency.")
        return measure if measure == "count" else measure.upper()


class SalesImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="Columns: " + ", ".join(sales.SALES_IMPORT_COLUMNS))


class SalesFilterForm(forms.Form):
    source = forms.ChoiceField(
        label="Source", required=False, choices=[("", "All sources"), *Sale.Source.choices]
    )
    product = forms.CharField(label="Product", required=False, max_length=200)


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        label="Format", choices=ExportJob.Format.choices, initial=ExportJob.Format.CSV, widget=forms.RadioSelect
    )
    requested_from = BusinessDateField(label="Requested from", required=False, widget=DATE_WIDGET)
    requested_to = BusinessDateField(label="Requested to (inclusive)", required=False, widget=DATE_WIDGET)
    resolved_from = BusinessDateField(label="Resolved from", required=False, widget=DATE_WIDGET)
    resolved_to = BusinessDateField(label="Resolved to (inclusive)", required=False, widget=DATE_WIDGET)
    status = forms.MultipleChoiceField(
        label="Status", required=False, choices=RefundStatus.choices, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every status.",
    )
    provider = forms.ChoiceField(label="Provider", required=False)
    currency = forms.ChoiceField(label="Currency", required=False)
    reason_code = forms.ModelChoiceField(
        label="Reason code", required=False, queryset=ReasonCode.objects.all(), to_field_name="code",
        empty_label="Any reason",
    )
    product = forms.CharField(label="Product", required=False, max_length=200, help_text="Exactly as on the refund.")
    origin = forms.ChoiceField(label="Filed", required=False, choices=[("", "Anywhere"), *RefundOrigin.choices])
    q = forms.CharField(
        label="Search", required=False, max_length=200,
        help_text="As in the refund list: a refund, payment or provider refund id, or part of a product name.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [("", "Any provider"), *_choices("provider")]
        self.fields["currency"].choices = [("", "Any currency"), *_choices("currency")]

    def clean(self):
        data = super().clean()
        for key in ("requested", "resolved"):
            check_date_range(self, f"{key}_from", f"{key}_to", order_error_field=f"{key}_to")
        return data

    def filters(self) -> dict:
        """The cleaned filters, JSON-safe (dates as ISO strings), only those set."""
        filters = {}
        for key in FILTER_KEYS:
            value = self.cleaned_data.get(key)
            if isinstance(value, ReasonCode):
                value = value.code
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            if value:
                filters[key] = value
        return filters


def _choices(field: str) -> list[tuple[str, str]]:
    return [(value, value) for value in distinct_values(RefundRequest, field)]
