"""{% dashboard_panel %}: the reports panel on the admin index (for users who may see reports)."""

from django import template

from refunds.reports.views.dashboard import dashboard_panel_context

register = template.Library()


@register.inclusion_tag("reports/_dashboard_panel.html", takes_context=True)
def dashboard_panel(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("refunds.view_reports"):
        return {"show": False}
    return {"show": True, **dashboard_panel_context(user)}
