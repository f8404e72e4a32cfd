"""/reports/...: the accountants' pages (dashboard, daily summary, exports, sales import)."""

from django.urls import path

from refunds import export_views, report_views
from refunds.dashboard_views import reports_dashboard

urlpatterns: list = [
    path("", reports_dashboard, name="reports-dashboard"),
    path("summary/", report_views.summary_view, name="reports-summary"),
    path("sales/", report_views.sales_list_view, name="reports-sales"),
    path("sales/import", report_views.sales_import_view, name="reports-sales-import"),
    path("sales/sync", report_views.sales_sync_view, name="reports-sales-sync"),
    path("exports/", export_views.export_list, name="export-list"),
    path("exports/<int:job_id>/", export_views.export_detail, name="export-detail"),
    path("exports/<int:job_id>/download", export_views.export_download, name="export-download"),
]
