"""schemathesis against the OpenAPI schema: generated valid and invalid requests never cause a
5xx, and every answer is one the schema documents (status, content type, body)."""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from refundoffice.wsgi import application
from refunds.api.authentication import api_token_create
from tests import factories

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def token(db):
    # Calling the WSGI app directly fires request_started/finished, which would close the
    # test's database connection mid-transaction (Django's own test client avoids this too).
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield api_token_create(user=factories.manager(username="fuzzer"))
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
@settings(
    # The suite's run is the same every time (a CI result must not depend on luck);
    # FUZZ_EXAMPLES=500 bin/test tests/api/test_fuzz.py digs deeper, at random, by hand.
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_never_errors_and_answers_as_documented(case, token):
    # Our real token stands in for the generated one; a case generated without the header
    # (schemathesis' negative cases drop the security header) is sent without it, and must be 401.
    headers = {"Authorization": f"Token {token}"} if "Authorization" in (case.headers or {}) else {}
    case.call_and_validate(headers=headers)
