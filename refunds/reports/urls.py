"""/reports/...: the accountants' pages (dashboard, daily summary, exports, sales import)."""

from django.urls import path

from refunds.reports.views import dashboard, exports, sales, summary

urlpatterns: list = [
    path("", dashboard.reports_dashboard, name="reports-dashboard"),
    path("summary/", summary.summary_view, name="reports-summary"),
    path("sales/", sales.sales_list_view, name="reports-sales"),
    path("sales/import", sales.sales_import_view, name="reports-sales-import"),
    path("sales/sync", sales.sales_sync_view, name="reports-sales-sync"),
    path("exports/", exports.export_list, name="export-list"),
    path("exports/<int:job_id>/", exports.export_detail, name="export-detail"),
    path("exports/<int:job_id>/download", exports.export_download, name="export-download"),
]
