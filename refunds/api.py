"""JSON API for support tools. Views parse, check, call one service, render."""

import datetime

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from approvals import services as approval_services
from refunds import errors
from refunds.services import intake
from refunds.models import RefundRequest, RefundStatus
from refunds.selectors import refund_visible_to, refund_with_approvals
from refunds.validation import check_printable, parse_refund_request

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_json",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def exception_handler(exc, context):
    """Every error is {"error": {"code", "message", "field"}}."""
    if isinstance(exc, errors.RefundError):
        return Response(error_body(exc.code, exc.message, exc.field), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "invalid")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    response.data = error_body(code, str(message))
    return response


def serialize_refund(refund: RefundRequest) -> dict:
    return {
        "merchant_refund_id": refund.merchant_refund_id,
        "provider": refund.provider,
        "connector_transaction_id": refund.connector_transaction_id,
        "connector_refund_id": refund.connector_refund_id or None,
        "status": refund.status,
        "amount": {"minor_amount": refund.amount_minor, "currency": refund.currency},
        "reason": refund.reason,
        "reason_code": refund.reason_code_id,
        "metadata": refund.metadata,
        "product": refund.product,
        "items": refund.items,
        "requested_by": refund.requested_by.get_username() if refund.requested_by else None,
        "origin": refund.origin,
        "created_at": refund.created_at,
        "resolved_at": refund.resolved_at,
        "approvals": [
            {
                "decision": a.decision,
                "approver": a.approver.get_username() if a.approver else None,
                "comment": a.comment,
                "tier": a.tier,
                "created_at": a.created_at,
            }
            for a in refund.approvals.all()
        ],
        "error": {"code": refund.error_code, "message": refund.error_message} if refund.error_code else None,
    }


def _reload(refund_id: int) -> RefundRequest:
    return refund_with_approvals(RefundRequest.objects.select_related("requested_by")).get(pk=refund_id)


LIST_PARAMETERS = frozenset(
    {"status", "provider", "currency", "product", "connector_transaction_id", "created_after", "created_before",
     "mine", "page"}
)


class RefundListCreate(ListAPIView):
    """GET: refunds the caller may see, newest first, filterable. POST: file a refund."""

    def get_queryset(self):
        qs = refund_with_approvals(refund_visible_to(self.request.user))
        params = self.request.query_params
        unknown = set(params) - LIST_PARAMETERS
        if unknown:
            # A typo such as ?stauts= would otherwise silently return everything.
            name = sorted(unknown)[0]
            raise errors.RefundValidationError(f"Unknown query parameter {name!r}.", field=name, code="unknown_parameter")
        for field in ("status", "provider", "currency", "product", "connector_transaction_id"):
            value = params.get(field)
            if value is not None:
                check_printable(value, field=field)
                if field == "status" and value not in RefundStatus.values:
                    raise errors.RefundValidationError(f"Unknown status {value!r}.", field="status")
                qs = qs.filter(**{field: value.upper() if field == "currency" else value})
        for param, lookup in (("created_after", "created_at__gte"), ("created_before", "created_at__lt")):
            if param in params:
                try:
                    moment = parse_datetime(params[param])
                except ValueError:  # well-formed but impossible, e.g. month 13
                    moment = None
                try:
                    if moment is not None and timezone.is_naive(moment):
                        moment = timezone.make_aware(moment, datetime.timezone.utc)
                    # In UTC: the database takes no offsets beyond ±16 hours.
                    moment = moment.astimezone(datetime.timezone.utc) if moment else None
                except OverflowError:
                    moment = None
                if moment is None:
                    raise errors.RefundValidationError(f"{param} must be an ISO 8601 date-time.", field=param)
                qs = qs.filter(**{lookup: moment})
        page = params.get("page")
        if page is not None and not (page.isascii() and page.isdigit() and int(page) >= 1):
            # DRF reads an empty page as the first: say what is wrong instead.
            raise errors.RefundValidationError("page is a whole number from 1.", field="page")
        mine = params.get("mine")
        if mine not in (None, "1", "true", "0", "false"):
            raise errors.RefundValidationError("mine is 1, true, 0 or false.", field="mine")
        if mine in ("1", "true"):
            qs = qs.filter(requested_by=self.request.user)
        return qs.order_by("-created_at", "-id")

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([serialize_refund(r) for r in page])

    def post(self, request):
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return Response(error_body("payload_too_large", "The request body is too large."), status=413)
        fields = parse_refund_request(request.data)
        refund, created = intake.refund_request_create(requested_by=request.user, **fields)
        return Response(serialize_refund(_reload(refund.pk)), status=201 if created else 200)


class RefundDetail(APIView):
    def get(self, request, merchant_refund_id):
        refund = refund_with_approvals(refund_visible_to(request.user)).filter(
            merchant_refund_id=merchant_refund_id
        ).first()
        if refund is None:
            raise exceptions.NotFound("No such refund.")
        return Response(serialize_refund(refund))


class _Decision(APIView):
    decide = None  # the approvals service: (refund_id, approver, comment) -> RefundRequest

    def post(self, request, merchant_refund_id):
        refund = refund_visible_to(request.user).filter(merchant_refund_id=merchant_refund_id).first()
        if refund is None:
            raise exceptions.NotFound("No such refund.")
        data = request.data
        if not isinstance(data, dict):
            raise errors.RefundValidationError("The body must be a JSON object.", code="invalid_body")
        unknown = set(data) - {"comment"}
        if unknown:
            field = sorted(unknown)[0]
            raise errors.RefundValidationError(f"Unknown field {field!r}.", field=field, code="unknown_field")
        comment = data.get("comment", "")
        if not isinstance(comment, str) or len(comment) > 1000:
            raise errors.RefundValidationError("comment must be a string of at most 1000 characters.", field="comment")
        self.decide(refund_id=refund.pk, approver=request.user, comment=comment)
        return Response(serialize_refund(_reload(refund.pk)), status=status.HTTP_200_OK)


class RefundApprove(_Decision):
    decide = staticmethod(approval_services.refund_approve)


class RefundReject(_Decision):
    decide = staticmethod(approval_services.refund_reject)
