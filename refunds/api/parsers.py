"""The API's JSON parser: DRF's, after a depth check on the raw body (refunds.jsonlimits)."""

from __future__ import annotations

import io

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from refunds.jsonlimits import MAX_JSON_DEPTH, json_too_deep


class JsonTooDeep(exceptions.ParseError):
    default_detail = f"The JSON body nests more than {MAX_JSON_DEPTH} levels deep."
    default_code = "json_too_deep"


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read() if stream is not None else b""
        if json_too_deep(data):
            raise JsonTooDeep()
        return super().parse(io.BytesIO(data), media_type, parser_context)
