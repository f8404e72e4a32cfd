"""Refund Office settings: one environ.Env, every knob from the environment.

Embedded defaults (SQLite, a filesystem broker, the local Stripe sandbox) make a fresh
checkout run with no servers; DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.

Secrets fail closed: unless DJANGO_DEBUG or REFUNDOFFICE_DEV_DEFAULTS is on (bin/run, bin/test,
the compose demo), a missing DJANGO_SECRET_KEY, STRIPE_SECRET_KEY or STRIPE_WEBHOOK_SECRET (the
two Stripe ones while Stripe is enabled) stops start-up with ImproperlyConfigured instead of
falling back to the development values. REFUNDOFFICE_DEV_DEFAULTS also installs the demo app
(devtools.demo: `manage.py seed_demo`), which production never imports.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Local development and tests: the demo app, and development values for missing secrets.
DEV_DEFAULTS = env.bool("REFUNDOFFICE_DEV_DEFAULTS", default=False)
_MISSING_SECRETS: list[str] = []


def _secret(name: str, *, dev_default: str, required: bool = True) -> str:
    """The variable's value; when it is empty, the development value in development, else
    the name is noted as missing (start-up stops below, naming every missing one)."""
    value = env.str(name, default="")
    if value or not required:
        return value
    if DEBUG or DEV_DEFAULTS:
        return dev_default
    _MISSING_SECRETS.append(name)
    return ""


SECRET_KEY = _secret("DJANGO_SECRET_KEY", dev_default="dev-insecure-change-me-0123456789abcdef")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "refunds.apps.RefundsConfig",
    "approvals.apps.ApprovalsConfig",
]
if DEV_DEFAULTS:
    INSTALLED_APPS.append("devtools.demo.apps.DemoConfig")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads the path, query or form: control characters are a 400 here.
    "refunds.middleware.HostileTextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The reader's language (the browser's Accept-Language among LANGUAGES) decides how money is
    # typed and shown (refunds.money: Babel's notation for that locale).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "refunds.timezones.UserTimeZoneMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "refundoffice.urls"
WSGI_APPLICATION = "refundoffice.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "refunds.navigation.approvals_waiting",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, worker and beat share one SQLite file: wait for the write lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
    # A file, not :memory:, so a test worker process sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    # DATABASE_POOL_MAX_SIZE > 0: each process keeps a psycopg pool of at most that many connections,
    # shared by its threads. A thread hands its connection back before it waits on a provider
    # (refunds/dbconn.py), so a worker of 24 threads needs a few connections, not 24, and many
    # workers stay under PostgreSQL's max_connections. 0: one persistent connection per thread.
    # Prepared statements (off by default): psycopg sends the parameters apart from the SQL
    # (server-side binding) and prepares a statement once its connection has run it
    # DATABASE_PREPARE_THRESHOLD times, so PostgreSQL parses and plans it once per connection.
    # Measured (bench/README.md, "Prepared statements"): intake's PostgreSQL CPU per request about
    # halves, but after five runs PostgreSQL may keep one generic plan for any value, which lost
    # the per-value plan of a query on a rare status (the dashboard's waiting list: 1 -> 28 ms over
    # 1,000,000 refunds), so it is off. Not behind a pooler that cannot keep prepared statements.
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=False):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=env.int("DATABASE_PREPARE_THRESHOLD", default=5)
        )
    _pool_max_size = env.int("DATABASE_POOL_MAX_SIZE", default=8)
    if _pool_max_size > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": _pool_max_size,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=30.0),
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # closing a connection returns it to the pool
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Shared by every process through the database, never per-process memory.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache_table"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"  # refunds.navigation.home: each role's own page
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Repeated failed logins lock the username out for a while (django-axes, state in the database).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "refunds.auth_backends.OneQueryModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_RESET_ON_SUCCESS = True
# Second factor (TOTP, django-otp) for those who move money or change the approval policy: a check
# older than this asks again before the next decision (web sessions and API tokens alike).
SECOND_FACTOR_MAX_AGE_SECONDS = int(env.float("SECOND_FACTOR_MAX_AGE_MINUTES", default=15) * 60)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Refund Office")
# Wrong codes: each failure doubles the wait before the next try (1 s, 2 s, 4 s, ... up to an hour).
OTP_TOTP_THROTTLE_FACTOR = env.int("OTP_TOTP_THROTTLE_FACTOR", default=1)

LANGUAGE_CODE = "en-us"
LANGUAGES = [
    ("en-us", "English (United States)"),
    ("en-gb", "English (United Kingdom)"),
    ("de", "Deutsch"),
    ("ru", "Русский"),
]
TIME_ZONE = "UTC"
# Dates read the same in every language (refundoffice/formats); times are in the reader's zone.
FORMAT_MODULE_PATH = ["refundoffice.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "refunds.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["refunds.api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "refunds.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_METADATA_CLASS": None,  # OPTIONS answers 405; the schema is at /api/schema/
}
# The schema at /api/schema/ is generated from refunds/api/serializers.py (see refunds/api/schema.py).
SPECTACULAR_SETTINGS = {
    "TITLE": "Refund Office API",
    "VERSION": "1.0.0",
    "DESCRIPTION": "File, follow, approve and reject refunds. Authenticate with `Authorization: Token <key>`.",
    "OAS_VERSION": "3.1.0",
    "SERVERS": [{"url": "/"}],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],  # public, whatever token a caller sends
    "AUTHENTICATION_WHITELIST": ["refunds.api.authentication.ApiTokenAuthentication"],
    "POSTPROCESSING_HOOKS": [],  # enums stay inline, where each field names its values
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
}

# --- Celery -------------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    _broker_dir = Path(env.str("CELERY_FILESYSTEM_BROKER_DIR", default=str(VAR_DIR / "broker")))
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=CELERY_BROKER_URL)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's own writes a message file after creating it, and a worker reading in between died.
    CELERY_BROKER_TRANSPORT = "refundoffice.filesystem_broker:Transport"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a crashed worker's task is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A refund's time in a worker is mostly waiting for the provider (hundreds of ms at a real Stripe),
# so on PostgreSQL a worker runs threads: 24 waits cost one process, not 24 (bench/README.md,
# "Draining at Stripe's live limit"). Run one worker process per core. SQLite takes one writer at
# a time, so there (bin/run's embedded default) a worker keeps two processes.
_on_sqlite = DATABASES["default"]["ENGINE"].endswith("sqlite3")
CELERY_WORKER_POOL = env.str("CELERY_WORKER_POOL", default="prefork" if _on_sqlite else "threads")
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=2 if _on_sqlite else 24)
if CELERY_BROKER_URL.startswith("redis"):
    # Every thread may ack (acks_late) or publish at once; kombu's Redis pool holds 10 by default,
    # and a thread finding it full loses its ack until the visibility timeout.
    CELERY_BROKER_TRANSPORT_OPTIONS["max_connections"] = CELERY_WORKER_CONCURRENCY + 8
CELERY_TASK_ALWAYS_EAGER = False
# Celery's Django fixup closes the database connection around every task unless told to reuse
# it: a new PostgreSQL connection per task was ~15 % of a worker's time (bench/README.md).
# close_old_connections (refundoffice/celery.py) still applies CONN_MAX_AGE and health checks.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing must not hang a web request when the broker is down: the database is the
# source of truth and the sweeper re-enqueues whatever did not make it.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}

REFUND_POLL_EVERY_SECONDS = env.float("REFUND_POLL_EVERY_SECONDS", default=15.0)

# --- Refund policy --------------------------------------------------------------------------
# "USD=5000,EUR=5000"; a currency not listed uses REFUND_AUTO_APPROVE_DEFAULT.
REFUND_AUTO_APPROVE_THRESHOLDS = env.dict("REFUND_AUTO_APPROVE_THRESHOLDS", cast={"value": int}, default={})
REFUND_AUTO_APPROVE_DEFAULT = env.int("REFUND_AUTO_APPROVE_DEFAULT", default=5000)
# The threshold always bounds the sum of auto-approved refunds on one payment. On, it also
# bounds the sum auto-approved for one customer (the provider's customer id) per business day
# (REPORTS_TIME_ZONE), across their payments. Off by default: many payments carry no customer.
REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY = env.bool("REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY", default=False)
# Bulk refunds (refunds/services/batches.py): the most rows and bytes one CSV file may have.
REFUND_BATCH_MAX_ROWS = env.int("REFUND_BATCH_MAX_ROWS", default=10_000)
REFUND_BATCH_MAX_BYTES = env.int("REFUND_BATCH_MAX_BYTES", default=5 * 1024 * 1024)
# A worker checking or filing a batch renews its claim every few rows; a claim this old is a dead
# worker's, and the sweeper hands the batch to another (which files nothing twice).
REFUND_BATCH_LEASE_SECONDS = env.int("REFUND_BATCH_LEASE_SECONDS", default=120)
# What the "Finance managers" group may approve alone, in any currency, until a superuser sets
# limits in the admin (Approvals › Approver limits). 100000 is $1,000.00.
REFUND_DEFAULT_APPROVER_LIMIT = env.int("REFUND_DEFAULT_APPROVER_LIMIT", default=100_000)
# Provider calls per refund before it is flagged for a person (counted in the database, so
# redelivered or re-dispatched tasks share one budget).
REFUND_SUBMIT_MAX_ATTEMPTS = env.int("REFUND_SUBMIT_MAX_ATTEMPTS", default=7)
# Retry n waits a random time in [d/2, d], d = min(MAX, BASE * 2**(n-1)) seconds.
REFUND_RETRY_BACKOFF_BASE = env.float("REFUND_RETRY_BACKOFF_BASE", default=5.0)
REFUND_RETRY_BACKOFF_MAX = env.float("REFUND_RETRY_BACKOFF_MAX", default=300.0)
# A refund submitted this long ago without a provider answer is submitted again (same key).
REFUND_SUBMIT_LEASE_SECONDS = env.int("REFUND_SUBMIT_LEASE_SECONDS", default=120)
REFUND_POLL_FIRST_DELAY = env.int("REFUND_POLL_FIRST_DELAY", default=5)
REFUND_POLL_MAX_DELAY = env.int("REFUND_POLL_MAX_DELAY", default=3600)
# Per provider, overriding REFUND_POLL_FIRST_DELAY: Robokassa refunds take minutes, not seconds.
REFUND_POLL_FIRST_DELAY_BY_PROVIDER = env.dict(
    "REFUND_POLL_FIRST_DELAY_BY_PROVIDER", cast={"value": int}, default={"robokassa": 30}
)
# After this long in "processing" a refund is flagged for a person.
REFUND_POLL_GIVE_UP_SECONDS = env.int("REFUND_POLL_GIVE_UP_SECONDS", default=14 * 24 * 3600)

# --- Providers ----------------------------------------------------------------------------
# The providers refunds may be filed with. A provider not listed is unknown to the API (400
# unknown_provider) and its configuration is not checked; `manage.py check` refuses to start
# with an enabled provider that is not fully configured.
REFUND_PROVIDERS = env.list("REFUND_PROVIDERS", default=["stripe", "robokassa"])
# Where a provider is not named (the new refund form's first choice, sales sync): one of
# REFUND_PROVIDERS, by default the first.
REFUND_DEFAULT_PROVIDER = env.str("REFUND_DEFAULT_PROVIDER", default=(REFUND_PROVIDERS or [""])[0])
_STRIPE_ENABLED = "stripe" in REFUND_PROVIDERS
STRIPE_SECRET_KEY = _secret("STRIPE_SECRET_KEY", dev_default="sk_test_refundoffice_sandbox", required=_STRIPE_ENABLED)
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="http://127.0.0.1:8420")
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
# In development an empty secret is kept: the endpoint then answers 503 webhook_not_configured.
STRIPE_WEBHOOK_SECRET = _secret("STRIPE_WEBHOOK_SECRET", dev_default="", required=_STRIPE_ENABLED)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# How long after its first use a refund's idempotency key is relied on alone. Stripe prunes keys
# after at least 24 hours; past this, a refund whose earlier create went unanswered is looked for
# at Stripe (by merchant_refund_id) before it is sent again. Default 20 hours.
STRIPE_IDEMPOTENCY_KEY_TRUST_SECONDS = env.int("STRIPE_IDEMPOTENCY_KEY_TRUST_SECONDS", default=72_000)
# Our reason codes as Stripe's refund reasons, beyond the adapter's table for the default codes:
# "late_delivery=requested_by_customer,chargeback=fraudulent".
STRIPE_REASON_BY_CODE = env.dict("STRIPE_REASON_BY_CODE", default={})
# Stripe publishes no maximum event size: a snapshot event carries the whole object (a charge
# with its refunds, an invoice with its lines; metadata alone up to 50 keys of 500 characters
# per object), and senders have met events far above the forms' 64 KB (mozilla/fxa#8861 went
# to 1 MB). Larger bodies get a JSON 413 before they are read further.
WEBHOOK_MAX_BYTES = env.int("WEBHOOK_MAX_BYTES", default=1024 * 1024)
WEBHOOK_RETRY_AFTER_SECONDS = env.int("WEBHOOK_RETRY_AFTER_SECONDS", default=60)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)
# Robokassa (Refund API v2 through aiorobokassa). The defaults talk to the local emulator
# (devtools/robokassa_sandbox); ROBOKASSA_API_BASE="" means Robokassa's own hosts.
ROBOKASSA_MERCHANT_LOGIN = env.str("ROBOKASSA_MERCHANT_LOGIN", default="refundoffice-demo")
ROBOKASSA_PASSWORD1 = env.str("ROBOKASSA_PASSWORD1", default="sandbox-password-1")
ROBOKASSA_PASSWORD2 = env.str("ROBOKASSA_PASSWORD2", default="sandbox-password-2")
# Signs the refund API's JWTs: without it Robokassa cannot refund at all.
ROBOKASSA_PASSWORD3 = env.str("ROBOKASSA_PASSWORD3", default="sandbox-password-3")
ROBOKASSA_API_BASE = env.str("ROBOKASSA_API_BASE", default="http://127.0.0.1:8430")
# The hash the shop chose in Robokassa's technical settings; it signs OpStateExt lookups.
ROBOKASSA_SIGNATURE_ALGORITHM = env.str("ROBOKASSA_SIGNATURE_ALGORITHM", default="MD5")
ROBOKASSA_TIMEOUT_SECONDS = env.float("ROBOKASSA_TIMEOUT_SECONDS", default=15.0)
# Hyperswitch Prism (refunds/providers/prism.py): each prism_<connector> in REFUND_PROVIDERS
# reaches that connector through Prism's SDK, configured by PRISM_<CONNECTOR>_<FIELD>, the
# fields of Prism's config for it (PRISM_STRIPE_API_KEY, PRISM_STRIPE_BASE_URL, ...);
# `manage.py check` names what is missing. PRISM_ENVIRONMENT: SANDBOX or PRODUCTION.
PRISM_ENVIRONMENT = env.str("PRISM_ENVIRONMENT", default="SANDBOX" if (DEBUG or DEV_DEFAULTS) else "PRODUCTION")
PRISM_TIMEOUT_SECONDS = env.float("PRISM_TIMEOUT_SECONDS", default=15.0)


def _prism_connector_settings(connector: str) -> dict[str, str]:
    prefix = f"PRISM_{connector.upper()}_"
    return {
        key.removeprefix(prefix).lower(): value
        for key, value in os.environ.items()
        if key.startswith(prefix) and key != f"{prefix}RATE_LIMIT_PER_SECOND"
    }


_PRISM_CONNECTORS = [name.removeprefix("prism_") for name in REFUND_PROVIDERS if name.startswith("prism_")]
PRISM_CONNECTORS = {connector: _prism_connector_settings(connector) for connector in _PRISM_CONNECTORS}
# Requests a second to each provider, shared by all processes (Stripe allows 25 in test mode,
# 100 live). 0 turns the limit off.
PROVIDER_RATE_LIMITS = {
    "stripe": env.float("STRIPE_RATE_LIMIT_PER_SECOND", default=25.0),
    "robokassa": env.float("ROBOKASSA_RATE_LIMIT_PER_SECOND", default=5.0),
    **{f"prism_{c}": env.float(f"PRISM_{c.upper()}_RATE_LIMIT_PER_SECOND", default=25.0) for c in _PRISM_CONNECTORS},
}
# How long a worker waits for a free slot before retrying the task later.
PROVIDER_RATE_MAX_WAIT_SECONDS = env.float("PROVIDER_RATE_MAX_WAIT_SECONDS", default=2.0)
# Intake waits less: a web request would rather accept a refund unverified than hang.
PROVIDER_RATE_MAX_WAIT_INTAKE_SECONDS = env.float("PROVIDER_RATE_MAX_WAIT_INTAKE_SECONDS", default=0.5)

# --- Reports -------------------------------------------------------------------------------
# The zone the business keeps its books in: report days, export columns "(business time)"
# and the morning summary's clock. Timestamps are stored and also exported in UTC.
REPORTS_TIME_ZONE = env.str("REPORTS_TIME_ZONE", default="UTC")
# When (HH:MM in REPORTS_TIME_ZONE) yesterday's summary goes to Slack; empty turns it off.
REPORTS_SUMMARY_SEND_AT = env.str("REPORTS_SUMMARY_SEND_AT", default="08:00")
# The payment metadata key that names the product, for sales synced from Stripe.
REPORTS_PRODUCT_METADATA_KEY = env.str("REPORTS_PRODUCT_METADATA_KEY", default="product")

# --- Slack ----------------------------------------------------------------------------------
SLACK_WEBHOOK_URL = env.str("SLACK_WEBHOOK_URL", default="")
SLACK_TIMEOUT_SECONDS = env.float("SLACK_TIMEOUT_SECONDS", default=5.0)
# Without a webhook, write each message to the worker's log instead (bin/run turns it on: the demo).
SLACK_LOG_MESSAGES = env.bool("SLACK_LOG_MESSAGES", default=False)
# The Slack app (interactive approvals): a bot token and signing secret, and the channel where
# refunds awaiting approval are posted with Approve/Reject buttons. Without a token the app mode is
# off and the incoming webhook above still notifies. SLACK_API_BASE points slack_sdk elsewhere (the
# local emulator in the demo and tests).
SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN", default="")
SLACK_SIGNING_SECRET = env.str("SLACK_SIGNING_SECRET", default="")
SLACK_APPROVALS_CHANNEL = env.str("SLACK_APPROVALS_CHANNEL", default="")
SLACK_API_BASE = env.str("SLACK_API_BASE", default="https://slack.com/api/")
# Signed requests older (or newer) than this are refused: Slack's own advice is five minutes.
SLACK_REQUEST_MAX_AGE_SECONDS = env.int("SLACK_REQUEST_MAX_AGE_SECONDS", default=300)
# Reminders to the approvals channel for refunds still awaiting approval after each of these hours.
SLACK_REMINDER_HOURS = [float(h) for h in env.list("SLACK_REMINDER_HOURS", default=["4", "24"]) if str(h).strip()]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact_secrets": {"()": "refunds.redaction.RedactSecretsFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # The SDK logs every request at INFO; our RefundLog already records each provider call.
    # aiorobokassa logs every failed request (with the response body) at ERROR before raising;
    # the adapter turns each into a provider error that the refund's log records.
    "loggers": {"stripe": {"level": "WARNING"}, "aiorobokassa": {"level": "CRITICAL"}},
}

if _MISSING_SECRETS:
    raise ImproperlyConfigured(
        f"Refund Office will not start: {', '.join(_MISSING_SECRETS)} "
        f"{'is' if len(_MISSING_SECRETS) == 1 else 'are'} not set. Set them in the environment (see "
        ".env.example), or set REFUNDOFFICE_DEV_DEFAULTS=1 (local development only: bin/run and bin/test "
        "do) to use the development values."
    )
