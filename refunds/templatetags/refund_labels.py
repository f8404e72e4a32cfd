"""Words for people in place of stored values: `{{ log.to_status|status_label }}` → "Pending approval"."""

from django import template

from refunds.models import RefundStatus

register = template.Library()


@register.filter
def status_label(value: str) -> str:
    try:
        return RefundStatus(value).label
    except ValueError:
        return value
