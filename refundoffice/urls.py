from django.contrib import admin
from django.urls import include, path

from refunds import batch_views
from refunds.navigation import home
from refunds.slack.views import slack_confirm, slack_interactions, slack_link
from refunds.second_factor_views import second_factor_setup_view, second_factor_view
from refunds.views import healthz, provider_webhook, refund_detail, refund_list, refund_new

admin.site.site_header = "Refund Office"
admin.site.site_title = "Refund Office"
admin.site.index_title = "Refunds, approvals and reports"

urlpatterns = [
    path("", home, name="home"),  # each role's own page
    path("accounts/second-factor/", second_factor_view, name="second-factor"),
    path("accounts/second-factor/setup/", second_factor_setup_view, name="second-factor-setup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("refunds/", refund_list, name="refund-list"),
    path("refunds/new", refund_new, name="refund-new"),
    path("refunds/batches/", batch_views.batch_list, name="batch-list"),
    path("refunds/batches/<int:batch_id>/", batch_views.batch_detail, name="batch-detail"),
    path("refunds/batches/<int:batch_id>/confirm", batch_views.batch_confirm, name="batch-confirm"),
    path("refunds/batches/<int:batch_id>/discard", batch_views.batch_discard, name="batch-discard"),
    path("refunds/batches/<int:batch_id>/results.csv", batch_views.batch_results, name="batch-results"),
    path("refunds/batches/<int:batch_id>/approve", batch_views.batch_approve, name="batch-approve"),
    path("refunds/<str:merchant_refund_id>", refund_detail, name="refund-detail"),
    path("reports/", include("refunds.reports.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("refunds.api.urls")),
    path("healthz", healthz, name="healthz"),
    # Stripe posts to /webhooks/stripe/; each provider that sends webhooks has its own path.
    path("webhooks/<slug:provider>/", provider_webhook, name="provider-webhook"),
    # The Slack app: Slack posts clicks here; people open the other two from Slack's links.
    path("slack/interactions", slack_interactions, name="slack-interactions"),
    path("slack/link/", slack_link, name="slack-link"),
    path("slack/confirm/", slack_confirm, name="slack-confirm"),
]
