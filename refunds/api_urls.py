from django.urls import path

from refunds import api
from refunds.openapi import openapi_schema

urlpatterns = [
    path("schema/", openapi_schema, name="api-schema"),
    path("refunds/", api.RefundListCreate.as_view(), name="api-refunds"),
    path("refunds/<str:merchant_refund_id>/", api.RefundDetail.as_view(), name="api-refund-detail"),
    path("refunds/<str:merchant_refund_id>/approve/", api.RefundApprove.as_view(), name="api-refund-approve"),
    path("refunds/<str:merchant_refund_id>/reject/", api.RefundReject.as_view(), name="api-refund-reject"),
]
