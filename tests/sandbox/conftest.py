"""Fixtures of the Stripe sandbox's tests."""

import pytest

from tests.sandbox.helpers import WebhookReceiver


@pytest.fixture
def sandbox(stripe_sandbox_clean):
    return stripe_sandbox_clean


@pytest.fixture
def client(sandbox):
    return sandbox.client()


@pytest.fixture
def receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
