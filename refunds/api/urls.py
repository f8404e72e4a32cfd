from django.urls import path

from refunds.api import batches, views
from refunds.api.schema import SchemaView

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("second-factor/", views.SecondFactorConfirm.as_view(), name="api-second-factor"),
    path("refunds/", views.RefundListCreate.as_view(), name="api-refunds"),
    path("refunds/<str:merchant_refund_id>/", views.RefundDetail.as_view(), name="api-refund-detail"),
    path("refunds/<str:merchant_refund_id>/approve/", views.RefundApprove.as_view(), name="api-refund-approve"),
    path("refund-batches/", batches.RefundBatchCreate.as_view(), name="api-refund-batches"),
    path("refund-batches/<str:batch_id>/", batches.RefundBatchDetail.as_view(), name="api-refund-batch-detail"),
    path("refund-batches/<str:batch_id>/confirm/", batches.RefundBatchConfirm.as_view(), name="api-refund-batch-confirm"),
    path("refund-batches/<str:batch_id>/results/", batches.RefundBatchResults.as_view(), name="api-refund-batch-results"),
    path("refunds/<str:merchant_refund_id>/reject/", views.RefundReject.as_view(), name="api-refund-reject"),
]
