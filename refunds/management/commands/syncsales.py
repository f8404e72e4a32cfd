import datetime

from django.core.management.base import BaseCommand, CommandError

from refunds.providers import UnknownProvider, default_sales_provider_name
from refunds.reports import calendar, sales
from refunds.providers.base import ProviderError


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).") from None


class Command(BaseCommand):
    help = (
        "Sync succeeded payments created from --start to --end (business days, inclusive; "
        "default yesterday) from the provider into sales. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--start", type=_date)
        parser.add_argument("--end", type=_date)
        parser.add_argument("--provider", help="default: the default provider that lists its payments")

    def handle(self, *args, start=None, end=None, provider=None, **options):
        provider = provider or default_sales_provider_name()
        yesterday = calendar.business_yesterday()
        start = start or end or yesterday
        end = end or start
        if end < start:
            raise CommandError("--end is before --start.")
        try:
            result = sales.sales_sync(provider=provider, start=start, end=end)
        except (UnknownProvider, sales.SalesSyncUnavailable) as error:
            raise CommandError(f"Sales cannot be synced from {provider}: {error}") from None
        except ProviderError as error:
            raise CommandError(f"{provider} failed ({error.code}): {error.message}") from None
        self.stdout.write(
            f"Synced {provider} {start}..{end}: {result.created} new, {result.updated} updated."
        )
