import pytest
from rest_framework.test import APIClient

from refunds import publish
from refunds.api.authentication import api_token_create
from refunds.second_factor import totp_device
from tests import factories
from tests.second_factor import current_code

pytest_plugins = [
    "tests.fixtures.stripe_sandbox",
    "tests.fixtures.robokassa_sandbox",
    "tests.fixtures.slack",
    "tests.fixtures.slack_emulator",
    "tests.fixtures.redis_server",
    "tests.fixtures.worker",
    "tests.fixtures.browser",
]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """The test process itself connects without PostgreSQL's connection pool: Django 5.2 keeps a
    pool opened before the test database was made (a connection at start-up) pointed at the real
    database, so migrations and tests would run there while the workers use the test database.
    The workers the tests start (tests/fixtures/worker.py) run as shipped, pool and threads."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database.get("OPTIONS", {}).pop("pool", None):
        database["CONN_MAX_AGE"] = 60  # as without a pool (refundoffice/settings.py)
        database["CONN_HEALTH_CHECKS"] = True


@pytest.fixture(autouse=True)
def _language_of_its_own():
    """Each test starts in the default language: a request's LocaleMiddleware leaves the
    language it activated on the test's thread (a German request made the next test's batch
    texts German), where a web process's next request activates its own."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _provider_settings(settings, stripe_sandbox, robokassa_sandbox):
    """Every test talks to the local Stripe sandbox and Robokassa emulator (both enabled), and
    to no Slack unless it asks for one."""
    settings.REFUND_PROVIDERS = ["stripe", "robokassa"]
    settings.STRIPE_API_BASE = stripe_sandbox.base_url
    settings.STRIPE_SECRET_KEY = stripe_sandbox.api_key
    settings.STRIPE_TIMEOUT_SECONDS = 3
    settings.ROBOKASSA_API_BASE = robokassa_sandbox.base_url
    settings.ROBOKASSA_MERCHANT_LOGIN = robokassa_sandbox.merchant_login
    settings.ROBOKASSA_PASSWORD2 = robokassa_sandbox.password2
    settings.ROBOKASSA_PASSWORD3 = robokassa_sandbox.password3
    settings.ROBOKASSA_SIGNATURE_ALGORITHM = "MD5"
    settings.ROBOKASSA_TIMEOUT_SECONDS = 3
    # Prism's Stripe connector against the same sandbox, for tests that enable prism_stripe.
    settings.PRISM_CONNECTORS = {"stripe": {"api_key": stripe_sandbox.api_key, "base_url": stripe_sandbox.base_url + "/"}}
    settings.PRISM_ENVIRONMENT = "SANDBOX"
    settings.PRISM_TIMEOUT_SECONDS = 3
    settings.SLACK_WEBHOOK_URL = ""
    settings.SLACK_LOG_MESSAGES = False
    settings.SLACK_BOT_TOKEN = ""  # the Slack app only where a test asks (tests/fixtures/slack_emulator.py)


@pytest.fixture
def agent(db):
    return factories.agent(username="agent")


@pytest.fixture
def manager(db):
    return factories.manager(username="manager")


@pytest.fixture
def manager2(db):
    return factories.manager(username="manager2")


@pytest.fixture
def accountant(db):
    return factories.accountant(username="accountant")


@pytest.fixture
def api():
    """api(user) -> an API client authenticated with a real token of that user. A user with an
    authenticator confirms it through the token first (POST /api/second-factor/ with the current
    code), as a tool of theirs would before decisions; second_factor=False leaves the token unconfirmed."""

    def make(user=None, *, second_factor=True):
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user)}")
            if second_factor and totp_device(user) is not None:
                confirmed = client.post("/api/second-factor/", {"code": current_code(user)}, format="json")
                assert confirmed.status_code == 200, confirmed.content
        return client

    return make


@pytest.fixture
def published_tasks(monkeypatch):
    """What `refunds.publish` handed to the broker, as [(task name, args)], in order.

    The task is looked up for real (an unknown name fails the test), only its `apply_async` is
    replaced. Run the on-commit callbacks (`django_capture_on_commit_callbacks(execute=True)`)
    for anything to be published."""
    sent = []
    real_task_by_name = publish.task_by_name

    class Recording:
        def __init__(self, name):
            self.task = real_task_by_name(name)
            self.name = name

        def apply_async(self, args=(), **options):
            sent.append((self.name, tuple(args)))

    monkeypatch.setattr(publish, "task_by_name", Recording)
    return sent
