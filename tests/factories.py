import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from django_otp.plugins.otp_totp.models import TOTPDevice

from refunds.models import Payment, RefundRequest, RefundStatus
from refunds.second_factor import second_factor_needed, totp_device
from refunds.roles import ACCOUNTANTS, FINANCE_MANAGERS, SUPPORT_AGENTS


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct-horse-battery")
    is_staff = True

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))

    @factory.post_generation
    def authenticator(self, create, extracted, **kwargs):
        """People who move money have a confirmed TOTP device, as after enrolment (pass
        authenticator=False for one who has not set it up yet)."""
        if create and extracted is not False and second_factor_needed(self) and totp_device(self) is None:
            TOTPDevice.objects.create(user=self, name="test authenticator", confirmed=True)


def agent(**kw):
    return UserFactory(role=SUPPORT_AGENTS, **kw)


def manager(**kw):
    return UserFactory(role=FINANCE_MANAGERS, **kw)


def accountant(**kw):
    return UserFactory(role=ACCOUNTANTS, **kw)


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    provider = "stripe"
    connector_transaction_id = factory.Sequence(lambda n: f"pi_factory{n}")
    amount_minor = 10_000
    currency = "USD"


class RefundFactory(factory.django.DjangoModelFactory):
    """A row as the intake service would leave it; for tests of later steps."""

    class Meta:
        model = RefundRequest

    merchant_refund_id = factory.Sequence(lambda n: f"rf-{n}")
    payment = factory.SubFactory(PaymentFactory)
    provider = factory.LazyAttribute(lambda r: r.payment.provider)
    connector_transaction_id = factory.LazyAttribute(lambda r: r.payment.connector_transaction_id)
    amount_minor = 1_000
    currency = "USD"
    status = RefundStatus.PENDING_APPROVAL
    requested_by = factory.LazyFunction(agent)
    request_fingerprint = "0" * 64
    idempotency_key = factory.Sequence(lambda n: f"refundoffice-test-{n}")
    payment_verified = True
