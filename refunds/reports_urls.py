"""/reports/...: the accountants' pages (dashboard, daily summary, exports, sales import)."""

from django.urls import path

urlpatterns: list = []
