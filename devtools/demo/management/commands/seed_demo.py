"""Demo users (one per role) and demo payments at the Stripe sandbox, with a few refunds in
different states. Safe to run on every start: what exists is kept."""

import time
from base64 import b32decode

import requests
import stripe
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from devtools.demo.history import demo_history_create
from devtools.robokassa_sandbox.control import Sandbox, SandboxError
from refunds.api.authentication import api_token_create
from refunds.models import Payment, SlackIdentity
from refunds.money import Money, format_minor
from refunds.providers import provider_names
from refunds.providers.base import LineItem
from refunds.roles import ACCOUNTANTS, FINANCE_MANAGERS, SUPPORT_AGENTS
from refunds.second_factor import second_factor_needed
from refunds.services.intake import refund_request_create

DEMO_PASSWORD = "refundoffice-demo"
# The demo's authenticator key (base32), the same for every demo user who moves money: add it to an
# authenticator app, or read the current code with `oathtool --totp -b KEY`. Demo only: a real
# person sets their own up at /accounts/second-factor/setup/.
DEMO_TOTP_SECRET = "REFUNDOFFICEDEMOREFUNDOFFICEDEMO"
DEMO_CODE_COMMAND = (
    ".venv/bin/python -c \"from base64 import b32decode; from django_otp.oath import totp; "
    f"print(f'{{totp(b32decode(\\\"{DEMO_TOTP_SECRET}\\\")):06d}}')\""
)
DEMO_USERS = [
    ("admin", None, "Ada", "Admin"),
    ("agent", SUPPORT_AGENTS, "Sam", "Support"),
    ("manager", FINANCE_MANAGERS, "Fran", "Finance"),
    ("manager2", FINANCE_MANAGERS, "Max", "Manager"),
    ("accountant", ACCOUNTANTS, "Alex", "Accounts"),
]
# (amount, currency, product, sandbox behaviour of its refunds). A payment whose refunds do
# something special says so in its product name, which the support form shows on lookup.
DEMO_PAYMENTS = [
    (4_900, "usd", "Blue mug", None),
    (12_900, "usd", "Desk lamp", None),
    (89_900, "usd", "Standing desk", None),
    (2_500, "usd", "Gift card", None),
    (15_000, "eur", "Headphones", None),
    (39_900, "usd", "Office chair (demo: refunds stay pending a few seconds)", "pending"),
    (7_500, "usd", "Keyboard (demo: refunds always fail)", "fail"),
    (250_000, "usd", "Annual licence", None),
]
# Robokassa (the local emulator): (kopeks, product, emulator behaviour of its refunds)
DEMO_ROBOKASSA_PAYMENTS = [
    (1_250_000, "Samovar", "finish"),
    (349_000, "Tea set", "finish"),
    (89_000, "Loose-leaf tea", "cancel"),
]


# The Slack emulator's people (devtools/slack_emulator/state.py) for the demo users.
DEMO_SLACK_USERS = {"manager": "U0MANAGER1", "manager2": "U0MANAGER2", "admin": "U0DIRECTOR", "agent": "U0AGENT001"}


class Command(BaseCommand):
    help = "Create demo users, demo payments at the Stripe sandbox and a few demo refunds."

    def add_arguments(self, parser):
        parser.add_argument("--wait", action="store_true", help="wait up to 60 s for the Stripe sandbox")

    def handle(self, *args, wait=False, **options):
        users = self._users()
        if wait:
            self._wait_for_stripe()
        client = stripe.StripeClient(
            settings.STRIPE_SECRET_KEY,
            base_addresses={"api": settings.STRIPE_API_BASE},
            http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
        )
        if not self._demo_payments_alive(client):
            self._payments_and_refunds(client, users)
        if "robokassa" in provider_names():
            self._robokassa_demo(users, wait=wait)
        made = demo_history_create(users=users)
        if made:
            self.stdout.write(f"  demo history: {made} finished refunds and their sales over the last 60 days")
        with_authenticator = [name for name, user in users.items() if self._demo_authenticator(user)]
        slack_linked = self._slack_links(users)
        key = api_token_create(user=users["agent"])
        self.stdout.write(
            self.style.SUCCESS(
                "\nRefund Office demo is ready on http://127.0.0.1:8000/admin/\n"
                f"  users: admin, agent, manager, manager2, accountant (password: {DEMO_PASSWORD})\n"
                "  approvals: manager and manager2 approve up to 1,000.00 in any currency; the 2,500.00 USD\n"
                "  'Annual licence' refund needs admin (no limit), after which it is executed at once\n"
                f"  API token for 'agent': {key}\n"
                f"  try: curl -H 'Authorization: Token {key}' http://127.0.0.1:8000/api/refunds/\n"
                f"  second factor for {', '.join(with_authenticator)} (before approving, rejecting, retrying,\n"
                f"    cancelling or changing the policy): authenticator key {DEMO_TOTP_SECRET}\n"
                f"    current code: oathtool --totp -b {DEMO_TOTP_SECRET}\n"
                f"    or: {DEMO_CODE_COMMAND}\n"
                + (f"  Slack (emulator on http://127.0.0.1:8440/): {slack_linked} linked; approve from there after\n"
                   "    confirming once for Slack at http://127.0.0.1:8000/slack/confirm/\n" if slack_linked else "")
            )
        )

    def _slack_links(self, users) -> str:
        """Link the demo people to the Slack emulator's users (as each would through the sign-in
        link); their second factor for Slack starts unconfirmed."""
        if not settings.SLACK_BOT_TOKEN:
            return ""
        linked = []
        for username, slack_user_id in DEMO_SLACK_USERS.items():
            user = users.get(username)
            taken = SlackIdentity.objects.filter(slack_user_id=slack_user_id).exclude(user=user).exists()
            if user is None or taken:
                continue
            SlackIdentity.objects.get_or_create(user=user, defaults={"slack_user_id": slack_user_id})
            linked.append(f"{username} = {slack_user_id}")
        return ", ".join(linked)

    def _users(self) -> dict:
        users = {}
        for username, group, first, last in DEMO_USERS:
            user, created = get_user_model().objects.get_or_create(
                username=username,
                defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com", "is_staff": True},
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.is_superuser = group is None
                user.save(update_fields=["password", "is_superuser"])
            if group:
                user.groups.add(Group.objects.get(name=group))
            users[username] = user
        return users

    def _demo_authenticator(self, user) -> bool:
        """Give a demo user who moves money a confirmed TOTP device with the demo key."""
        if not second_factor_needed(user):
            return False
        key = b32decode(DEMO_TOTP_SECRET).hex()
        TOTPDevice.objects.update_or_create(
            user=user, name="Demo authenticator", defaults={"key": key, "confirmed": True}
        )
        return True

    def _wait_for_stripe(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(settings.STRIPE_API_BASE, timeout=2)
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise CommandError(f"The Stripe API at {settings.STRIPE_API_BASE} did not answer in 60 s.")
                time.sleep(0.5)

    def _robokassa_demo(self, users, *, wait: bool) -> None:
        """Demo payments at the local Robokassa emulator (skipped against any other host)."""
        base = settings.ROBOKASSA_API_BASE
        deadline = time.monotonic() + (60 if wait else 0)
        while True:
            try:
                is_emulator = bool(base) and requests.get(base, timeout=2).json().get("robokassa_sandbox")
                break
            except (requests.RequestException, ValueError):
                if time.monotonic() >= deadline:
                    is_emulator = False
                    break
                time.sleep(0.5)
        if not is_emulator:
            self.stdout.write(f"  no Robokassa emulator at {base!r}: no Robokassa demo payments")
            return
        sandbox = Sandbox(base, settings.ROBOKASSA_MERCHANT_LOGIN, settings.ROBOKASSA_PASSWORD3)
        existing = Payment.objects.filter(provider="robokassa").order_by("pk").first()
        if existing is not None:
            try:
                sandbox.payment(existing.connector_transaction_id)
                return
            except SandboxError:
                pass  # the emulator was reset: make them again
        invoice_ids = []
        for amount, product, behavior in DEMO_ROBOKASSA_PAYMENTS:
            invoice_id = sandbox.create_payment(amount, behavior=behavior, description=product)
            invoice_ids.append(invoice_id)
            self.stdout.write(f"  demo Robokassa payment InvoiceID {invoice_id}: {amount} RUB (kopeks) {product}")
        with transaction.atomic():
            refund_request_create(
                merchant_refund_id=f"demo-rk-{invoice_ids[1][:8]}",
                provider="robokassa",
                connector_transaction_id=invoice_ids[1],
                amount=None,
                items=[
                    LineItem("Teapot", 1, Money(2_500, "RUB"), "vat20"),
                    LineItem("Cup", 2, Money(1_200, "RUB"), "vat20"),
                ],
                reason="Two cups and the teapot arrived broken",
                metadata={"ticket": "DEMO-RK-1"},
                product="Tea set",
                requested_by=users["agent"],
            )

    def _demo_payments_alive(self, client) -> bool:
        """Demo payments exist here and the sandbox still knows them (it may have been reset)."""
        payment = Payment.objects.filter(provider="stripe").order_by("pk").first()
        if payment is None:
            return False
        try:
            client.v1.payment_intents.retrieve(payment.connector_transaction_id)
        except stripe.InvalidRequestError:
            return False
        return True

    def _payments_and_refunds(self, client, users) -> None:
        intents = []
        for amount, currency, product, behavior in DEMO_PAYMENTS:
            metadata = {"product": product}
            if behavior:
                metadata["sandbox_refund_behavior"] = behavior
            intent = client.v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency,
                    "payment_method": "pm_card_visa",
                    "confirm": True,
                    "metadata": metadata,
                }
            )
            intents.append((intent.id, amount, currency.upper(), product))
            self.stdout.write(f"  demo payment {intent.id}: {format_minor(amount, currency.upper())} {product}")
        # A few refunds so the queue and the log are not empty on first look.
        demo_refunds = [(0, 1_500, "Chipped on arrival"), (2, 20_000, "Wobbly leg, partial refund agreed"),
                        (7, 250_000, "Cancelled within 14 days")]
        for index, amount, reason in demo_refunds:
            pi, _, currency, product = intents[index]
            with transaction.atomic():
                refund_request_create(
                    merchant_refund_id=f"demo-{pi[-8:]}",
                    provider="stripe",
                    connector_transaction_id=pi,
                    amount=Money(amount, currency),
                    reason=reason,
                    metadata={"ticket": f"DEMO-{index + 100}"},
                    product=product,
                    requested_by=users["agent"],
                )
