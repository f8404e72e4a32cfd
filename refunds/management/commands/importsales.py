from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from refunds.reports import sales


class Command(BaseCommand):
    help = (
        "Import sales from a CSV file (columns: " + ", ".join(sales.SALES_IMPORT_COLUMNS) + "). "
        "All or nothing; importing the same file again updates its sales."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--user", help="Record the import as made by this username.")

    def handle(self, *args, file: Path, user=None, **options):
        importer = None
        if user:
            importer = get_user_model().objects.filter(username=user).first()
            if importer is None:
                raise CommandError(f"No user named {user!r}.")
        if not file.is_file():
            raise CommandError(f"No file {file}.")
        if file.stat().st_size > sales.SALES_IMPORT_MAX_BYTES:
            raise CommandError(
                f"{file} is larger than {sales.SALES_IMPORT_MAX_BYTES // 1024 // 1024} MB; split it."
            )
        try:
            result = sales.sales_import_csv(data=file.read_bytes(), batch_name=file.name, user=importer)
        except sales.SalesImportError as error:
            lines = "\n".join(error.errors)
            more = error.total_errors - len(error.errors)
            raise CommandError(
                f"Nothing was imported: {error.total_errors} problem(s).\n{lines}"
                + (f"\n… and {more} more." if more else "")
            ) from None
        self.stdout.write(f"Imported {file.name}: {result.created} new, {result.updated} updated.")
