# Two migrations written side by side (the payment alias, the API token's second-factor time);
# they touch different tables, so they merge as they are.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0011_apitoken_second_factor_at"),
        ("refunds", "0011_payment_alias"),
    ]
    operations = []
