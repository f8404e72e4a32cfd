"""The API of bulk refunds, for tools: POST the CSV file (text/csv) for its dry run, read the
batch until it is checked, confirm it, read it until it is done, fetch the per-row results (CSV).
The same services as the pages (refunds/services/batches.py, batch_runs.py)."""

from __future__ import annotations

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from refunds.api.errors import error_body
from refunds.api.serializers import ErrorSerializer
from refunds.models import RefundBatch
from refunds.services import batches
from refunds.visibility import refund_batches_visible_to


class CsvParser(BaseParser):
    """The body as bytes, read up to one byte past the batch file limit (the service says how big)."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return b""
        return stream.read(settings.REFUND_BATCH_MAX_BYTES + 1)


class RefundBatchSerializer(serializers.ModelSerializer):
    totals = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()), read_only=True,
        help_text="Per currency after the dry run: minor units and row counts per plan (auto, approval, already, "
                  "refused; `<plan>_rows`).",
    )

    class Meta:
        model = RefundBatch
        fields = ["id", "state", "file_name", "rows_total", "rows_checked", "rows_done", "totals", "created_at",
                  "confirmed_at", "finished_at"]
        read_only_fields = fields


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


def _batch(description: str) -> OpenApiResponse:
    return OpenApiResponse(RefundBatchSerializer, description=description)


_ERRORS = {400: _error("Bad input: `error.code` says what (e.g. control characters in the path)."),
           401: _error("No or an invalid token."), 403: _error("`permission_denied`: not allowed for this user."),
           404: _error("No such batch (or not visible to you).")}


_BATCH_ID = OpenApiParameter("batch_id", {"type": "integer", "minimum": 1}, OpenApiParameter.PATH)


def _visible(request, batch_id: str) -> RefundBatch:
    # A str in the URL, so a path that is no number is this API's JSON 404, not the site's page.
    if not (batch_id.isascii() and batch_id.isdigit() and len(batch_id) <= 18):
        raise exceptions.NotFound("No such batch.")
    batch = refund_batches_visible_to(request.user).filter(pk=int(batch_id)).first()
    if batch is None:
        raise exceptions.NotFound("No such batch.")
    return batch


class RefundBatchCreate(APIView):
    parser_classes = [CsvParser]

    @extend_schema(
        operation_id="createRefundBatch",
        request={"text/csv": {
            "type": "string",
            "description": "The CSV file (UTF-8, comma-separated, a header row naming the columns "
                           + ", ".join(batches.BATCH_COLUMNS) + "; amounts written 1,234.50). The pattern shows "
                           "the simplest file: full refunds by payment id.",
            # What a generator may send and expect to be read; other files are described by the 400.
            "pattern": "^" + ",".join(batches.BATCH_COLUMNS) + r"\n([A-Za-z0-9][A-Za-z0-9._:-]{0,40},stripe,"
                       r"pi_[A-Za-z0-9]{1,30},,,,,\n){1,5}$",
        }},
        responses={
            201: _batch("Read; its dry run is queued. Nothing is filed until POST …/confirm/."),
            400: _error("`batch_file_invalid`: the file cannot be read; `error.message` lists the lines."),
            **{k: v for k, v in _ERRORS.items() if k != 404},
            413: _error("`payload_too_large`: over REFUND_BATCH_MAX_BYTES."),
            415: _error("`unsupported_media_type`: send text/csv."),
        },
    )
    def post(self, request):
        data = request.data  # DRF refuses any other media type (415)
        if not isinstance(data, bytes):  # an empty body: DRF hands over no stream
            data = b""
        if len(data) > settings.REFUND_BATCH_MAX_BYTES:
            return Response(error_body("payload_too_large", f"The file is larger than "
                                       f"{settings.REFUND_BATCH_MAX_BYTES:,} bytes; split it.", "file"), status=413)
        try:
            batch = batches.refund_batch_create(user=request.user, data=data, file_name="api upload")
        except batches.BatchFileError as error:
            shown = "; ".join(error.problems[:20])
            more = f" (and {error.total - 20} more)" if error.total > 20 else ""
            return Response(error_body(error.code, f"Nothing was filed. {shown}{more}", "file"), status=400)
        return Response(RefundBatchSerializer(batch).data, status=201)


class RefundBatchDetail(APIView):
    @extend_schema(operation_id="getRefundBatch", parameters=[_BATCH_ID], responses={200: _batch("The batch and its progress."), **_ERRORS})
    def get(self, request, batch_id: str):
        return Response(RefundBatchSerializer(_visible(request, batch_id)).data)


class RefundBatchConfirm(APIView):
    @extend_schema(
        operation_id="confirmRefundBatch", request=None, parameters=[_BATCH_ID],
        responses={202: _batch("Filing; confirming again changes nothing."), **_ERRORS,
                   409: _error("`batch_not_checked`: the dry run has not finished, or the batch was discarded.")},
    )
    def post(self, request, batch_id: str):
        batch = _visible(request, batch_id)
        batch = batches.refund_batch_confirm(batch_id=batch.pk, user=request.user)
        return Response(RefundBatchSerializer(batch).data, status=202)


class RefundBatchResults(APIView):
    @extend_schema(
        operation_id="getRefundBatchResults", parameters=[_BATCH_ID],
        responses={(200, "text/csv"): OpenApiResponse({"type": "string"}, description="One line per row."), **_ERRORS},
    )
    def get(self, request, batch_id: str):
        batch = _visible(request, batch_id)
        response = StreamingHttpResponse(batches.batch_results_csv(batch), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="refund-batch-{batch.pk}-results.csv"'
        return response

