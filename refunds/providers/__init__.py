"""Provider registry: a name from a refund row to a configured adapter.

Which providers exist is code (`_CLASSES`); which are enabled is configuration
(`settings.REFUND_PROVIDERS`). A provider that is not enabled is unknown to every caller.
Hyperswitch Prism's connectors are providers named `prism_<connector>` (refunds/providers/prism.py):
prism_stripe is always known (it is exercised against the Stripe sandbox); any other is known
once REFUND_PROVIDERS names it, and its configuration check says whether Prism has it.
"""

import os
from importlib import import_module

from django.conf import settings

from refunds.providers.base import RefundProvider


class UnknownProvider(LookupError):
    pass


# name -> "module:Class", imported only when used.
_CLASSES = {
    "stripe": "refunds.providers.stripe:StripeProvider",
    "robokassa": "refunds.providers.robokassa:RobokassaProvider",
    "prism_stripe": "refunds.providers.prism:PrismProvider",
}
PRISM_PREFIX = "prism_"


def known_provider_names() -> list[str]:
    prism = {name for name in settings.REFUND_PROVIDERS if name.startswith(PRISM_PREFIX) and len(name) > len(PRISM_PREFIX)}
    return sorted(set(_CLASSES) | prism)


def provider_label(name: str) -> str:
    """How pages name a provider: "Stripe", "Robokassa", "Stripe via Prism"."""
    if name.startswith(PRISM_PREFIX):
        return f"{name.removeprefix(PRISM_PREFIX).replace('_', ' ').title()} via Prism"
    return name.capitalize()


def provider_names() -> list[str]:
    """The enabled providers, in the order configured."""
    known = known_provider_names()
    return [name for name in settings.REFUND_PROVIDERS if name in known]


def default_provider_name() -> str:
    """Where a provider is not named (a new refund's form): REFUND_DEFAULT_PROVIDER when it is
    enabled, else the first enabled provider; "" when none is."""
    names = provider_names()
    if settings.REFUND_DEFAULT_PROVIDER in names:
        return settings.REFUND_DEFAULT_PROVIDER
    return names[0] if names else ""


def default_sales_provider_name() -> str:
    """Where sales are synced without naming the provider: the default provider when it lists
    its payments, else the first enabled one that does; "" when none does."""
    default = default_provider_name()
    names = [default, *provider_names()] if default else []
    return next((name for name in names if provider_class(name).lists_payments), "")


def provider_class(name: str) -> type[RefundProvider]:
    if name not in provider_names():
        raise UnknownProvider(name)
    if name.startswith(PRISM_PREFIX):
        # One adapter class for every Prism connector, specialised by connector name.
        return import_module("refunds.providers.prism").provider_class(name.removeprefix(PRISM_PREFIX))
    module, _, cls = _CLASSES[name].partition(":")
    return getattr(import_module(module), cls)


# Adapters whose class says they may be reused (`reusable = True`: no per-call state, their
# HTTP client keeps its connections per thread), one per process and provider name, so calls
# reuse connections instead of opening one each. Keyed by process id too: a forked child never
# shares its parent's sockets. Emptied whenever a setting changes (tests' overrides).
_reused: dict[tuple[int, str], RefundProvider] = {}


def get_provider(name: str) -> RefundProvider:
    cls = provider_class(name)
    if not getattr(cls, "reusable", False):
        return cls.from_settings()
    key = (os.getpid(), name)
    adapter = _reused.get(key)
    if adapter is None:
        adapter = _reused[key] = cls.from_settings()
    return adapter


def providers_forget(**kwargs) -> None:
    """Receiver of Django's `setting_changed`: adapters are rebuilt from the new settings."""
    _reused.clear()
