"""docker-compose.yml is valid Compose and runs the parts the app needs; the settings fail closed
outside development; the production image carries no dev code."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed (.ci/run installs it)")
def test_compose_file_validates_with_docker_compose():
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_postgres_redis_web_worker_beat_on_one_configuration():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "migrate"} <= set(services)
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "gunicorn" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "refundoffice", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "refundoffice", "beat"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements" in dockerfile and "collectstatic" in dockerfile


# --- settings fail closed ------------------------------------------------------------------

# Every variable that could switch development values on, or supply a secret, is removed so
# each case below states its own environment.
_SETTINGS_VARIABLES = (
    "DJANGO_DEBUG", "REFUNDOFFICE_DEV_DEFAULTS", "DJANGO_SECRET_KEY", "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET", "REFUND_PROVIDERS", "REFUND_DEFAULT_PROVIDER",
)


def start_django(tmp_path, code="from django.conf import settings; print(settings.INSTALLED_APPS[-1])", **env):
    """`django.setup()` in a fresh process with only `env` set (of the settings variables)."""
    clean = {k: v for k, v in os.environ.items() if k not in _SETTINGS_VARIABLES}
    clean.update(DJANGO_SETTINGS_MODULE="refundoffice.settings", PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        capture_output=True, text=True, cwd=tmp_path, env=clean, timeout=60,
    )


# settings.py reads the checkout's .env too, which would fill in what a case leaves out.
no_dotenv = pytest.mark.skipif((ROOT / ".env").exists(), reason="a .env file in the checkout supplies settings")
PRODUCTION = {"DJANGO_SECRET_KEY": "s3cret-" * 8, "STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}


@no_dotenv
def test_production_without_secrets_stops_with_a_readable_message(tmp_path):
    result = start_django(tmp_path)

    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured: Refund Office will not start:")
    assert "DJANGO_SECRET_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET are not set" in message
    assert "REFUNDOFFICE_DEV_DEFAULTS=1" in message


@no_dotenv
@pytest.mark.parametrize("missing", sorted(PRODUCTION))
def test_each_missing_secret_is_named(tmp_path, missing):
    result = start_django(tmp_path, **{k: v for k, v in PRODUCTION.items() if k != missing})

    assert result.returncode != 0
    assert f"Refund Office will not start: {missing} is not set" in result.stderr


def test_production_with_its_secrets_starts_without_the_demo(tmp_path):
    result = start_django(tmp_path, **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "approvals.apps.ApprovalsConfig"  # no devtools.demo


def test_stripe_secrets_are_not_required_while_stripe_is_disabled(tmp_path):
    result = start_django(tmp_path, DJANGO_SECRET_KEY="s3cret-" * 8, REFUND_PROVIDERS="robokassa")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("flag", [{"REFUNDOFFICE_DEV_DEFAULTS": "1"}, {"DJANGO_DEBUG": "1"}])
def test_development_flags_keep_the_development_values(tmp_path, flag):
    code = "from django.conf import settings; print(settings.SECRET_KEY, settings.STRIPE_SECRET_KEY, settings.INSTALLED_APPS[-1])"
    result = start_django(tmp_path, code=code, **flag)

    assert result.returncode == 0, result.stderr
    secret_key, stripe_key, last_app = result.stdout.split()
    assert secret_key.startswith("dev-insecure") and stripe_key == "sk_test_refundoffice_sandbox"
    assert (last_app == "devtools.demo.apps.DemoConfig") == ("REFUNDOFFICE_DEV_DEFAULTS" in flag)


def test_bin_run_and_bin_test_use_the_development_values():
    for script in ("bin/run", "bin/test"):
        assert 'export REFUNDOFFICE_DEV_DEFAULTS="${REFUNDOFFICE_DEV_DEFAULTS:-1}"' in (ROOT / script).read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    app_env = compose["services"]["web"]["environment"]
    assert {"DJANGO_SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"} <= set(app_env)


def test_the_production_image_carries_no_dev_code():
    dockerfile = (ROOT / "Dockerfile").read_text()
    production = dockerfile[dockerfile.rindex("FROM base AS production"):]
    assert "requirements.txt" in production and "requirements-dev.txt" not in production
    assert "COPY . ." not in production and "devtools" not in production
    imports = [
        (path, text)
        for path in (ROOT / "refunds").rglob("*.py")
        for text in path.read_text().splitlines()
        if text.lstrip().startswith(("import ", "from "))
    ]
    assert [(path, text) for path, text in imports if "devtools" in text] == []
