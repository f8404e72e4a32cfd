"""refunds.money.money_parse: money as people type it, read in their locale or refused with a
message saying what was understood; and format_minor, which it must read back."""

import pytest
from django.utils import translation
from hypothesis import HealthCheck, given, settings, strategies as st

from refunds.money import MAX_MINOR_AMOUNT, MoneyParseError, format_minor, format_minor_number, money_parse

LOCALES = ("en_US", "de_DE", "ru_RU")
NBSP, NNBSP = "\u00a0", "\u202f"


@pytest.mark.parametrize(
    ("text", "currency", "locale", "minor"),
    [
        ("1.50", "EUR", "en_US", 150),
        ("1,50", "EUR", "de_DE", 150),
        ("1.234,56", "EUR", "de_DE", 123_456),
        ("1 234,56", "EUR", "ru_RU", 123_456),
        (f"1{NBSP}234,56", "EUR", "ru_RU", 123_456),
        (f"1{NNBSP}234,56", "RUB", "ru_RU", 123_456),
        ("1234,56", "RUB", "ru_RU", 123_456),
        ("€1.50", "EUR", "en_US", 150),
        ("1,50 €", "EUR", "de_DE", 150),
        ("12.50 EUR", "EUR", "en_US", 1_250),
        ("usd 7", "USD", "en_US", 700),
        ("$1,234.50", "USD", "en_US", 123_450),
        ("5 ₽", "RUB", "ru_RU", 500),
        ("1,500", "EUR", "en_US", 150_000),  # valid English grouping: thousands
        ("1.500", "EUR", "de_DE", 150_000),  # valid German grouping: thousands
        ("1,234", "JPY", "en_US", 1_234),
        ("1.234", "KWD", "en_US", 1_234),
        ("  7  ", "USD", "en_US", 700),
        (".5", "USD", "en_US", 50),
        ("10000000000", "EUR", "en_US", MAX_MINOR_AMOUNT),
    ],
)
def test_amounts_people_type_are_read_in_their_locale(text, currency, locale, minor):
    assert money_parse(text, currency=currency, locale=locale) == minor


@pytest.mark.parametrize(
    ("text", "currency", "locale", "code", "says"),
    [
        ("1,50", "EUR", "en_US", "notation", "It could be 150.00 EUR or 1.50 EUR"),
        ("1.50", "EUR", "de_DE", "notation", "It could be 150,00 EUR or 1,50 EUR"),
        ("1.50", "EUR", "ru_RU", "notation", "“.” is not part of an amount in Russian (Russia) notation"),
        ("1 234.56", "USD", "en_US", "notation", "“ ” is not part of an amount"),
        ("12,34,567", "USD", "en_US", "notation", "It could be 1,234,567.00 USD"),
        ("1e1", "EUR", "en_US", "exponent", "scientific notation"),
        ("1e999999", "EUR", "en_US", "exponent", "scientific notation"),
        ("1E-5", "EUR", "en_US", "exponent", "scientific notation"),
        ("-5", "EUR", "en_US", "sign", "without a sign"),
        ("+5", "EUR", "en_US", "sign", "without a sign"),
        ("(5)", "EUR", "en_US", "sign", "without a sign"),
        ("5.555", "EUR", "en_US", "decimals", "EUR has 2 decimal places. “5.555” has 3 digits after the “.”"),
        ("1.500", "EUR", "en_US", "decimals", "EUR has 2 decimal places."),  # not 1.50, not 1500
        ("1.5", "JPY", "en_US", "decimals", "JPY has 0 decimal places"),
        ("1.2345", "KWD", "en_US", "decimals", "KWD has 3 decimal places"),
        ("abc", "EUR", "en_US", "letters", "has letters (abc)"),
        ("NaN", "EUR", "en_US", "letters", "has letters"),
        ("Infinity", "EUR", "en_US", "letters", "has letters"),
        ("$5", "EUR", "en_US", "other_currency", "“$” is another currency's sign; this payment is in EUR"),
        ("5 USD", "EUR", "de_DE", "other_currency", "“USD” is another currency's sign"),
        ("£5", "EUR", "en_US", "other_currency", "another currency's sign"),
        ("", "EUR", "en_US", "empty", "Enter an amount in EUR, e.g. 1,234.50."),
        ("   ", "EUR", "de_DE", "empty", "Enter an amount in EUR, e.g. 1.234,50."),
        ("0", "EUR", "en_US", "zero", "greater than zero"),
        ("0,00", "EUR", "de_DE", "zero", "greater than zero"),
        ("10000000000.01", "EUR", "en_US", "too_large", "more than any payment (at most 10,000,000,000.00 EUR)"),
        ("9" * 41, "EUR", "en_US", "too_long", "41 characters long"),
        ("1_000", "EUR", "en_US", "notation", "“_” is not part of an amount"),
        ("١٢", "EUR", "en_US", "notation", "is not part of an amount"),
        (",", "EUR", "en_US", "notation", "is not an amount"),
        ("1.2.3", "EUR", "en_US", "notation", "is not an amount in English"),
        ("5", "XYZ", "en_US", "unknown_currency", "'XYZ' is not a currency"),
    ],
)
def test_what_is_not_an_amount_is_refused_saying_why(text, currency, locale, code, says):
    with pytest.raises(MoneyParseError) as refused:
        money_parse(text, currency=currency, locale=locale)
    assert refused.value.code == code
    assert says in str(refused.value)


def test_the_locale_is_the_active_language_unless_given():
    with translation.override("de"):
        assert money_parse("1,50", currency="EUR") == 150
        assert format_minor(123_456, "EUR") == "1.234,56 EUR"
    with translation.override("en-us"):
        with pytest.raises(MoneyParseError):
            money_parse("1,50", currency="EUR")
        assert format_minor(123_456, "EUR") == "1,234.56 EUR"
    with translation.override("ru"):
        assert format_minor(123_456, "RUB") == f"1{NBSP}234,56 RUB"
    assert money_parse("1,50", currency="EUR", locale="de") == 150


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "shown"),
    [
        (123_456, "EUR", "en_US", "1,234.56 EUR"),
        (123_456, "EUR", "de_DE", "1.234,56 EUR"),
        (100_000, "JPY", "en_US", "100,000 JPY"),
        (1_234, "KWD", "de_DE", "1,234 KWD"),
        (5, "USD", "ru_RU", "0,05 USD"),
        (None, "USD", "en_US", "—"),
    ],
)
def test_format_minor_writes_money_in_the_reader_s_locale(minor, currency, locale, shown):
    assert format_minor(minor, currency, locale) == shown


# --- properties ---------------------------------------------------------------------------

TYPED = st.text(alphabet=st.sampled_from(list("0123456789.,'  \u00a0\u202f-+−()eE€$₽£¥ UuSsDdRrBb_٣") + [NNBSP]),
                max_size=48)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=60), TYPED), currency=st.sampled_from(["EUR", "JPY", "KWD", "RUB", "USD"]),
       locale=st.sampled_from(LOCALES))
def test_any_text_is_an_amount_in_range_or_a_money_parse_error(text, currency, locale):
    try:
        minor = money_parse(text, currency=currency, locale=locale)
    except MoneyParseError as error:
        assert str(error)  # always a message to show
    else:
        assert type(minor) is int and 0 < minor <= MAX_MINOR_AMOUNT


@settings(max_examples=400, deadline=None)
@given(minor=st.integers(min_value=1, max_value=MAX_MINOR_AMOUNT), currency=st.sampled_from(["JPY", "EUR", "KWD"]),
       locale=st.sampled_from(LOCALES))
def test_what_format_minor_writes_money_parse_reads_back(minor, currency, locale):
    assert money_parse(format_minor(minor, currency, locale), currency=currency, locale=locale) == minor
    assert money_parse(format_minor_number(minor, currency, locale), currency=currency, locale=locale) == minor


# --- format_minor against Babel ----------------------------------------------------------
# format_minor writes the grouping and decimals out for an int (Babel's NumberPattern.apply was a
# measurable part of intake's CPU); what it writes must be what Babel writes for the same pattern.

def _babel_wrote(minor, currency, locale):
    from babel.numbers import format_currency

    from refunds.money import _number_pattern, minor_to_decimal

    return format_currency(minor_to_decimal(minor, currency), currency, format=f"{_number_pattern(currency)} ¤¤",
                           locale=locale, currency_digits=False)


def _every_locale():
    from babel.localedata import locale_identifiers

    return sorted(locale_identifiers())


EDGE_AMOUNTS = (0, 1, -1, 9, 10, 99, 100, 999, 1_000, 12_345, -12_345, 999_999, 1_000_000, 123_456_789,
                -987_654_321_012, MAX_MINOR_AMOUNT, 10**18 + 7)


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD", "XXX"])
def test_format_minor_writes_what_babel_writes_in_every_locale(currency):
    wrong = [
        (locale, minor, format_minor(minor, currency, locale), _babel_wrote(minor, currency, locale))
        for locale in _every_locale()
        for minor in EDGE_AMOUNTS
        if format_minor(minor, currency, locale) != _babel_wrote(minor, currency, locale)
    ]
    assert wrong == []


@settings(max_examples=500, deadline=None)
@given(minor=st.integers(min_value=-(10**15), max_value=10**15), currency=st.sampled_from(["EUR", "JPY", "BHD", "RUB"]),
       locale=st.sampled_from(["en_US", "de_CH", "fr_FR", "ru_RU", "ar_EG", "hi_IN", "es_MX", "fa_IR", "he_IL", "sv_SE"]))
def test_format_minor_and_the_number_alone_agree_with_babel(minor, currency, locale):
    from babel.numbers import format_decimal

    from refunds.money import _number_pattern, minor_to_decimal

    assert format_minor(minor, currency, locale) == _babel_wrote(minor, currency, locale)
    assert format_minor_number(minor, currency, locale) == format_decimal(
        minor_to_decimal(minor, currency), format=_number_pattern(currency), locale=locale
    )


def test_amounts_that_are_not_ints_are_still_written_by_babel():
    from decimal import Decimal

    assert format_minor(Decimal("123456"), "EUR", "de_DE") == "1.234,56 EUR"  # a database SUM
    assert format_minor(Decimal("123456.7"), "EUR", "en_US") == _babel_wrote(Decimal("123456.7"), "EUR", "en_US")
    assert format_minor(True, "USD", "en_US") == "0.01 USD"
