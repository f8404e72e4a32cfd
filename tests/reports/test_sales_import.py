"""Sales from a CSV file: the import page and command; all or nothing, line-numbered errors,
re-import updates."""

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from refunds.models import Sale
from refunds.reports import sales

pytestmark = pytest.mark.django_db

IMPORT = reverse("reports-sales-import")
GOOD = (
    "sale_id,sold_at,product,amount,currency\n"
    "INV-1,2026-03-10,Pro plan,49.00,USD\n"
    "INV-2,2026-03-10T14:05:00,Team plan,1200.5,EUR\n"
    "INV-3,2026-03-10T23:30:00+00:00,,1500,JPY\n"
)


def upload(client, text, name="march.csv"):
    return client.post(IMPORT, {"file": SimpleUploadedFile(name, text.encode(), content_type="text/csv")})


@pytest.fixture
def new_york(settings):
    settings.REPORTS_TIME_ZONE = "America/New_York"


def test_a_good_file_is_imported_exactly(client, accountant, new_york):
    client.force_login(accountant)
    response = upload(client, GOOD)
    assert response.status_code == 302 and response.url == reverse("reports-sales") + "?source=import"
    rows = {s.external_id: s for s in Sale.objects.all()}
    assert set(rows) == {"INV-1", "INV-2", "INV-3"}
    one, two, three = rows["INV-1"], rows["INV-2"], rows["INV-3"]
    assert (one.source, one.product, one.amount_minor, one.currency) == ("import", "Pro plan", 4900, "USD")
    # A date is midnight in the business zone; a naive time is in it too; an offset is kept.
    assert one.sold_at == datetime.datetime(2026, 3, 10, 4, 0, tzinfo=datetime.UTC)
    assert two.sold_at == datetime.datetime(2026, 3, 10, 18, 5, tzinfo=datetime.UTC)
    assert (two.amount_minor, two.currency) == (120050, "EUR")
    assert three.sold_at == datetime.datetime(2026, 3, 10, 23, 30, tzinfo=datetime.UTC)
    assert (three.product, three.amount_minor, three.currency) == ("", 1500, "JPY")
    assert one.import_batch == "march.csv" and one.imported_by == accountant
    page = client.get(response.url)
    assert "Imported march.csv: 3 new sales, 0 updated." in page.content.decode()
    assert "Pro plan" in page.content.decode() and "49.00 USD" in page.content.decode()


def test_reimporting_the_same_file_updates_rather_than_duplicates(client, accountant):
    client.force_login(accountant)
    upload(client, GOOD)
    changed = GOOD.replace("INV-1,2026-03-10,Pro plan,49.00", "INV-1,2026-03-10,Pro plan,59.00")
    response = upload(client, changed)
    assert response.status_code == 302
    assert Sale.objects.count() == 3
    assert Sale.objects.get(external_id="INV-1").amount_minor == 5900
    assert "0 new sales, 3 updated." in client.get(response.url).content.decode()


def test_bad_rows_write_nothing_and_are_listed_by_line(client, accountant):
    client.force_login(accountant)
    bad = (
        "sale_id,sold_at,product,amount,currency\n"
        "INV-1,2026-03-10,Pro plan,49.00,USD\n"
        "INV-2,yesterday,Pro plan,49.00,USD\n"
        "INV-3,2026-03-10,Pro plan,49.001,USD\n"
        "\n"
        "INV-1,2026-03-11,Pro plan,12,USD\n"
        "INV-5,2026-03-10,Pro plan,abc,XYZ\n"
        ",2026-03-10,Pro plan,-1,JPY\n"
    )
    response = upload(client, bad)
    assert response.status_code == 200
    assert Sale.objects.count() == 0
    html = response.content.decode()
    assert "Nothing was imported: 5 problems in the file." in html
    assert "Line 3: sold_at &#x27;yesterday&#x27; is not an ISO date" in html
    assert "Line 4: amount 49.001: USD has 2 decimal places." in html
    assert "Line 6: sale_id &#x27;INV-1&#x27; is also on line 2." in html
    assert "Line 7: amount &#x27;abc&#x27; is not a number; currency &#x27;XYZ&#x27; is not a known ISO 4217 code" in html
    assert "Line 8: sale_id is empty; amount -1 is negative." in html


def test_a_file_without_the_columns_is_refused(client, accountant):
    client.force_login(accountant)
    response = upload(client, "id,date,amount\n1,2026-03-10,5\n")
    assert Sale.objects.count() == 0
    assert "Line 1: missing columns sale_id, sold_at, product, currency" in response.content.decode()


def test_a_file_over_the_size_limit_is_refused_clearly(client, accountant, monkeypatch):
    monkeypatch.setattr(sales, "SALES_IMPORT_MAX_BYTES", 1024 * 1024)
    client.force_login(accountant)
    big = GOOD + "".join(f"X-{i},2026-03-10,p,1.00,USD\n" for i in range(50_000))
    response = upload(client, big)
    assert response.status_code == 200 and Sale.objects.count() == 0
    assert "the limit is 1 MB. Split it into smaller files." in response.content.decode()


def test_import_needs_add_sale(client, agent, manager):
    assert client.get(IMPORT).status_code == 302  # to the login page
    client.force_login(agent)
    assert client.get(IMPORT).status_code == 403
    assert client.get(reverse("reports-sales")).status_code == 403
    client.force_login(manager)  # may see sales, may not add them
    assert client.get(reverse("reports-sales")).status_code == 200
    assert upload(client, GOOD).status_code == 403
    assert Sale.objects.count() == 0


def test_import_form_needs_csrf(accountant):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(accountant)
    assert upload(client, GOOD).status_code == 403
    assert Sale.objects.count() == 0


def test_sales_list_filters_and_pages(client, accountant):
    for i in range(60):
        Sale.objects.create(source="import", external_id=f"I-{i}", product="pro" if i % 2 else "team",
                            amount_minor=100, currency="USD",
                            sold_at=datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC) + datetime.timedelta(hours=i))
    Sale.objects.create(source="stripe", external_id="pi_x", product="pro", amount_minor=100, currency="USD",
                        sold_at=datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC))
    client.force_login(accountant)
    page = client.get(reverse("reports-sales"), {"source": "import", "product": "pro"})
    assert [r["sale"].external_id for r in page.context["rows"]][:2] == ["I-59", "I-57"]
    assert page.context["page"].paginator.count == 30
    everything = client.get(reverse("reports-sales"))
    assert everything.context["page"].paginator.num_pages == 2
    assert "page=2" in everything.content.decode()


def test_importsales_command(tmp_path, accountant):
    path = tmp_path / "sales.csv"
    path.write_text(GOOD)
    call_command("importsales", str(path), "--user", "accountant")
    assert Sale.objects.filter(source="import", imported_by=accountant).count() == 3
    path.write_text(GOOD.replace("49.00", "49.0001"))
    with pytest.raises(CommandError, match="Line 2: amount 49.0001: USD has 2 decimal places"):
        call_command("importsales", str(path))
    assert Sale.objects.get(external_id="INV-1").amount_minor == 4900


def test_amounts_are_read_by_the_money_parser_in_one_notation(accountant):
    good = sales.sales_import_parse(data=(
        "sale_id,sold_at,product,amount,currency\n"
        "A,2026-03-10,p,\"1,234.50\",USD\n"
        "B,2026-03-10,p,€5.00,EUR\n"
        "C,2026-03-10,p,0,USD\n"
        "D,2026-03-10,p,1.234,KWD\n"
    ).encode())
    assert [(s.external_id, s.amount_minor, s.currency) for s in good] == [
        ("A", 123_450, "USD"), ("B", 500, "EUR"), ("C", 0, "USD"), ("D", 1_234, "KWD")
    ]

    with pytest.raises(sales.SalesImportError) as refused:
        sales.sales_import_parse(data=(
            "sale_id,sold_at,product,amount,currency\n"
            "E,2026-03-10,p,\"1,50\",EUR\n"
            "F,2026-03-10,p,1e999999,EUR\n"
            "G,2026-03-10,p,$5,EUR\n"
            "H,2026-03-10,p,10000000000.01,EUR\n"
        ).encode())
    assert refused.value.errors == [
        "Line 2: amount '1,50' is not a number.",  # never 150.00
        "Line 3: amount '1e999999' is not a number.",
        "Line 4: amount '$5' names another currency than EUR.",
        "Line 5: amount 10000000000.01 is too large.",
    ]
