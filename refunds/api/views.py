"""JSON API for support tools. Views parse (with the serializers), check, call one service, render."""

import datetime

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import services as approval_services
from refunds import second_factor
from refunds.services import intake
from refunds.api import schema
from refunds.api.errors import error_body
from refunds.api.serializers import (
    DecisionSerializer,
    RefundCreateSerializer,
    RefundListParamsSerializer,
    RefundSerializer,
    SecondFactorResultSerializer,
    SecondFactorSerializer,
    refund_shown,
)
from refunds.models import ApiToken, RefundRequest
from refunds.selectors import refund_list_filtered, refund_visible_to, refund_with_approvals, refunds_load_approvals


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _reload(refund_id: int) -> RefundRequest:
    return refund_with_approvals(RefundRequest.objects.select_related("requested_by")).get(pk=refund_id)


def _visible(queryset, merchant_refund_id: str) -> RefundRequest:
    refund = queryset.filter(merchant_refund_id=merchant_refund_id).first()
    if refund is None:
        raise exceptions.NotFound("No such refund.")
    return refund


class RefundPagination(PageNumberPagination):
    """Pages of the refund list, described as JSON Schema (OpenAPI 3.1) describes them."""

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": ["string", "null"], "format": "uri"}
        return {
            "type": "object",
            "required": ["count", "next", "previous", "results"],
            "properties": {"count": {"type": "integer"}, "next": link, "previous": link, "results": schema},
        }


class RefundListCreate(ListAPIView):
    """GET: refunds the caller may see, newest first, filterable. POST: file a refund."""

    serializer_class = RefundSerializer
    pagination_class = RefundPagination

    def get_queryset(self):
        params = dict(_valid(RefundListParamsSerializer, self.request.query_params))
        params.pop("page", None)  # the paginator's (checked above: DRF would read a bad page as the first)
        return refund_list_filtered(user=self.request.user, **params)

    @extend_schema(**schema.LIST_REFUNDS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(**schema.CREATE_REFUND)
    def post(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        # Digits only, and few enough for int() (it refuses past 4,300 digits).
        if not length.isdigit() or len(length) > 18 or int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return Response(error_body("payload_too_large", "The request body is too large."), status=413)
        fields = _valid(RefundCreateSerializer, request.data)
        refund, created = intake.refund_request_create(requested_by=request.user, **fields)
        if created:
            # The row as intake made and saved it (its requester is this user), its approvals
            # held already (intake made them): nothing is read again.
            refunds_load_approvals([refund])  # no query when they are held
            return Response(refund_shown(refund), status=201)
        return Response(refund_shown(_reload(refund.pk)), status=200)


class RefundDetail(APIView):
    @extend_schema(**schema.GET_REFUND)
    def get(self, request, merchant_refund_id):
        return Response(refund_shown(
            _visible(refund_with_approvals(refund_visible_to(request.user)), merchant_refund_id)
        ))


class _Decision(APIView):
    decide = None  # the approvals service: (*, refund_id, approver, comment) -> RefundRequest

    def post(self, request, merchant_refund_id):
        refund = _visible(refund_visible_to(request.user), merchant_refund_id)
        if not second_factor.api_request_is_fresh(request):
            raise second_factor.SecondFactorRequired(
                "Confirm with your authenticator first: POST /api/second-factor/ with the code it shows now."
            )
        comment = _valid(DecisionSerializer, request.data)["comment"]
        self.decide(refund_id=refund.pk, approver=request.user, comment=comment)
        return Response(refund_shown(_reload(refund.pk)), status=status.HTTP_200_OK)


@extend_schema_view(post=extend_schema(**schema.decision("approve")))
class RefundApprove(_Decision):
    decide = staticmethod(approval_services.refund_approve)


@extend_schema_view(post=extend_schema(**schema.decision("reject")))
class RefundReject(_Decision):
    decide = staticmethod(approval_services.refund_reject)


class SecondFactorConfirm(APIView):
    """The caller confirms with their authenticator; decisions through this token (or session) need
    no new code for SECOND_FACTOR_MAX_AGE_SECONDS."""

    @extend_schema(**schema.SECOND_FACTOR)
    def post(self, request):
        code = _valid(SecondFactorSerializer, request.data)["code"]
        device = second_factor.second_factor_verify(user=request.user, code=code)
        if isinstance(request.auth, ApiToken):
            second_factor.api_token_mark_verified(token=request.auth)
            verified_at = request.auth.second_factor_at
        else:  # a session (the browsable pages' own calls): the same check as the web pages'
            second_factor.session_mark_verified(request._request, device)
            verified_at = timezone.now()
        until = verified_at + datetime.timedelta(seconds=settings.SECOND_FACTOR_MAX_AGE_SECONDS)
        return Response(SecondFactorResultSerializer({"verified_until": until}).data)
