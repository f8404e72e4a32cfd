"""System checks: `manage.py check` (and every management command, runserver, migrate) refuses
to start with a provider enabled but not configured, instead of failing mid-refund."""

from django.conf import settings
from django.core import checks

from refunds.providers import known_provider_names, provider_class


@checks.register(checks.Tags.compatibility)
def providers_configured(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problems = []
    enabled = list(settings.REFUND_PROVIDERS)
    for name in enabled:
        if name not in known_provider_names():
            problems.append(
                checks.Error(
                    f"REFUND_PROVIDERS names an unknown provider {name!r}.",
                    hint=f"Known providers: {', '.join(known_provider_names())}.",
                    id="refunds.E001",
                )
            )
            continue
        for problem in provider_class(name).check_configuration(settings):
            problems.append(
                checks.Error(
                    f"{name} is enabled but not configured: {problem}",
                    hint=f"Set it in the environment (see .env.example), or remove {name} from REFUND_PROVIDERS.",
                    id="refunds.E002",
                )
            )
    if not enabled:
        problems.append(
            checks.Warning("REFUND_PROVIDERS is empty: no refund can be filed.", id="refunds.W001")
        )
    return problems
