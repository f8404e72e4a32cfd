"""The report pages, one module per page: dashboard, summary, sales, exports."""
