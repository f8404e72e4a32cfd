"""Money is (minor_amount: int, currency: str), never a float.

Money people type is read by `money_parse`, money people read is written by `format_minor`, both
in the reader's locale (Babel's CLDR data; by default Django's active language), so "1,50" is one
euro fifty in German and a form error in English, never 150 euros."""

import functools
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    NumberFormatError,
    format_decimal,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    parse_decimal,
)
from django.conf import settings
from django.utils import translation

# ISO 4217 minor-unit exponents for the currencies card providers settle in. A currency not
# listed here is refused at intake rather than guessed.
_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_TWO_DECIMAL = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BWP BYN BZD "
    "CAD CDF CHF CNY COP CRC CVE CZK DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD GTQ GYD "
    "HKD HNL HTG HUF IDR ILS INR JMD KES KGS KHR KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD "
    "MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR "
    "RON RSD RUB SAR SBD SCR SEK SGD SHP SLE SOS SRD STD SZL THB TJS TOP TRY TTD TWD TZS UAH "
    "USD UYU UZS WST XCD YER ZAR ZMW"
)
CURRENCY_EXPONENTS = {
    **{code: 0 for code in _ZERO_DECIMAL.split()},
    **{code: 2 for code in _TWO_DECIMAL.split()},
    **{code: 3 for code in _THREE_DECIMAL.split()},
}

# Larger than any single card payment; keeps amounts inside a signed 64-bit column.
MAX_MINOR_AMOUNT = 10**12
# Text stored for later readers (log lines, approval comments) is written in one fixed notation.
STORED_TEXT_LOCALE = "en_US"
# Decimal exponents an amount from outside may have before it is converted: `1e999999` would
# overflow the decimal context (or become a million-digit int), `1e-999999` round to zero.
_LARGEST_ADJUSTED = 15
_SMALLEST_ADJUSTED = -12


@dataclass(frozen=True)
class Money:
    minor_amount: int
    currency: str

    def as_dict(self) -> dict:
        return {"minor_amount": self.minor_amount, "currency": self.currency}


def is_known_currency(currency: str) -> bool:
    return currency in CURRENCY_EXPONENTS


def minor_to_decimal(minor_amount: int, currency: str) -> Decimal:
    return Decimal(minor_amount).scaleb(-CURRENCY_EXPONENTS.get(currency, 2))


def money_locale(locale: "Locale | str | None" = None) -> Locale:
    """A Babel Locale: the one given ("de", "ru_RU", "en-us"), else Django's active language."""
    if isinstance(locale, Locale):
        return locale
    return _locale_named(locale or translation.get_language() or settings.LANGUAGE_CODE)


@functools.lru_cache(maxsize=256)
def _locale_named(name: str) -> Locale:
    """Parsed once per name and process (Locale.parse reads and checks CLDR's data each time);
    the names come from LANGUAGES and callers' literals, a few dozen at most."""
    try:
        return Locale.parse(name.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return Locale.parse("en_US")


def _number_pattern(currency: str) -> str:
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return "#,##0" + ("." + "0" * exponent if exponent else "")


@functools.lru_cache(maxsize=256)
def _separators(locale: Locale) -> tuple[str, str]:
    """The locale's group and decimal symbols in Latin digits (Babel's default numbering)."""
    return get_group_symbol(locale), get_decimal_symbol(locale)


def _minor_number(minor_amount, currency: str, locale: Locale) -> str:
    """What Babel writes for _number_pattern(currency) (grouped by three, the currency's exponent
    of decimals, "-" before a negative), written out for an int: Babel's NumberPattern.apply was
    4 % of intake's CPU, for the three amounts it writes into notes and log lines (bench/README.md).
    Anything else (a Decimal from a database SUM) goes to Babel."""
    if type(minor_amount) is not int:  # noqa: E721 - bool and Decimal go the long way
        return format_decimal(minor_to_decimal(minor_amount, currency), format=_number_pattern(currency),
                              locale=locale)
    group, decimal = _separators(locale)
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    whole, fraction = divmod(abs(minor_amount), 10**exponent)
    text = f"{whole:,}".replace(",", group) + (f"{decimal}{fraction:0{exponent}d}" if exponent else "")
    return "-" + text if minor_amount < 0 else text


def format_minor(minor_amount: int | None, currency: str, locale: "Locale | str | None" = None) -> str:
    """1234550, "EUR" -> "12,345.50 EUR" in English, "12.345,50 EUR" in German, "12 345,50 EUR"
    in Russian (the ISO code, not "$", which names several currencies)."""
    if minor_amount is None:
        return "—"
    return f"{_minor_number(minor_amount, currency, money_locale(locale))} {currency.upper()}"


def format_minor_number(minor_amount: int, currency: str, locale: "Locale | str | None" = None) -> str:
    """The number alone, as a person would type it back: "12.345,50" in German."""
    return _minor_number(minor_amount, currency, money_locale(locale))


def decimal_to_minor(value: Decimal, currency: str) -> int:
    """12.34 USD -> 1234; refuses more decimal places than the currency has (no rounding), and
    amounts far beyond any payment (ValueError, whatever the exponent: no decimal.Overflow)."""
    exponent = CURRENCY_EXPONENTS[currency]
    if not value.is_finite():
        raise ValueError("An amount is a finite number.")
    if value.is_zero():
        return 0  # whatever its exponent (0E+999999 would overflow scaleb)
    if value.adjusted() > _LARGEST_ADJUSTED:
        raise ValueError("The amount is too large.")
    if value.adjusted() < _SMALLEST_ADJUSTED:
        raise ValueError(f"{currency} has {exponent} decimal place{'s' if exponent != 1 else ''}.")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} has {exponent} decimal place{'s' if exponent != 1 else ''}.")
    return int(minor)


# --- reading money people type ------------------------------------------------------------

# Longer than any amount with grouping and a currency code; longer text is refused unread.
MAX_AMOUNT_TEXT = 40
_SPACES = " \u00a0\u202f\u2009\t"
_DIGITS = "0123456789"
_SIGNS = "+-\u2212\u2013()"
_EXPONENT = re.compile(r"^[\d.,\s\u00a0\u202f]*\d[eE][+\-\u2212]?\d+$")
_CODE = re.compile(r"[A-Za-z]{3}")


class MoneyParseError(ValueError):
    """Typed money that is not an amount; the message says what was understood and what to type.
    `code`: empty, too_long, other_currency, exponent, sign, letters, notation, unknown_currency,
    decimals, too_large, zero."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


def money_parse(text: str | None, *, currency: str, locale: "Locale | str | None" = None,
                allow_zero: bool = False) -> int:
    """What a person typed, in `locale` (default: the active language), as minor units of
    `currency`, in (0, MAX_MINOR_AMOUNT] ([0, …] with `allow_zero`). Refused (MoneyParseError), never
    guessed: grouping Babel's strict parser finds invalid in the locale ("1,50" in English, "1.50"
    in German), a separator the locale does not use ("." in Russian), more decimals than the
    currency has ("1.500" EUR in English: not read as 1.50 nor 1500), exponents, signs, letters,
    another currency's symbol or code, empty, zero, too large. The currency's own symbol (in that
    locale) or ISO code, in front or behind, is fine. Valid grouping is read as grouping
    ("1,500" in English is 1500.00)."""
    locale = money_locale(locale)
    shown = (text or "").strip(_SPACES)
    example = _example(currency, locale)
    ask = f"Enter an amount in {currency}"
    if not shown:
        raise MoneyParseError(f"{ask}, e.g. {example}.", code="empty")
    if len(shown) > MAX_AMOUNT_TEXT:
        raise MoneyParseError(f"{ask}: this is {len(shown)} characters long, not an amount. E.g. {example}.",
                              code="too_long")
    number = _without_own_currency(shown, currency=currency, locale=locale, example=example)
    _check_characters(number, shown=shown, currency=currency, locale=locale, example=example)
    value = _parse_strict(number, shown=shown, currency=currency, locale=locale)
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise MoneyParseError(f"{currency!r} is not a currency amounts can be entered in.", code="unknown_currency")
    decimal = get_decimal_symbol(locale)
    decimals = len(number.partition(decimal)[2])
    if decimals > exponent:
        most = f"at most {exponent}" if exponent else f"whole {currency}, nothing after the “{decimal}”"
        raise MoneyParseError(
            f"{currency} has {exponent} decimal place{'s' if exponent != 1 else ''}. “{shown}” has {decimals} "
            f"digit{'s' if decimals != 1 else ''} after the “{decimal}”: enter {most}, e.g. {example}.",
            code="decimals",
        )
    if value > minor_to_decimal(MAX_MINOR_AMOUNT, currency):
        raise MoneyParseError(
            f"“{shown}” is more than any payment (at most {format_minor(MAX_MINOR_AMOUNT, currency, locale)}).",
            code="too_large",
        )
    minor = int(value.scaleb(exponent))
    if minor <= 0 and not allow_zero:
        raise MoneyParseError(f"{ask} greater than zero: “{shown}” is zero.", code="zero")
    return minor


def _example(currency: str, locale: Locale) -> str:
    """1,234.50 in the locale's notation with the currency's decimals (1,234 for JPY)."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return format_minor_number(1234 * 10**exponent + (50 * 10 ** (exponent - 2) if exponent >= 2 else 0),
                               currency, locale)


def _without_own_currency(shown: str, *, currency: str, locale: Locale, example: str) -> str:
    """The text without the currency's own symbol or code in front or behind; another
    currency's symbol or code is an error."""
    number = shown
    own = sorted({currency, currency.lower(), get_currency_symbol(currency, locale)}, key=len, reverse=True)
    for token in own:
        if token and number.startswith(token):
            number = number[len(token):].strip(_SPACES)
            break
    for token in own:
        if token and number.endswith(token):
            number = number[: -len(token)].strip(_SPACES)
            break
    foreign = next((c for c in number if unicodedata.category(c) == "Sc"), None)
    code = next((m.group() for m in _CODE.finditer(number) if m.group().upper() in CURRENCY_EXPONENTS), None)
    if foreign or code:
        raise MoneyParseError(
            f"“{foreign or code}” is another currency's sign; this payment is in {currency}. "
            f"Enter the amount in {currency}, e.g. {example} (or {example} {currency}).",
            code="other_currency",
        )
    return number


def _check_characters(number: str, *, shown: str, currency: str, locale: Locale, example: str) -> None:
    """Digits, the locale's group and decimal symbols, nothing else (spaces count as the group
    symbol where the locale groups with a space)."""
    ask = f"Enter an amount in {currency}"
    if _EXPONENT.match(number):
        raise MoneyParseError(f"{ask} in full digits: “{shown}” is scientific notation, which is not taken. "
                              f"E.g. {example}.", code="exponent")
    if any(c in _SIGNS for c in number):
        raise MoneyParseError(f"{ask} without a sign or brackets: “{shown}” reads as a signed number, and an "
                              f"amount here is always positive. E.g. {example}.", code="sign")
    letters = "".join(dict.fromkeys(c for c in number if c.isalpha()))
    if letters:
        raise MoneyParseError(f"{ask} greater than zero, in digits: “{shown}” has letters ({letters[:10]}), "
                              f"which are no part of an amount. E.g. {example}.", code="letters")
    group, decimal = get_group_symbol(locale), get_decimal_symbol(locale)
    allowed = _DIGITS + group + decimal + (_SPACES if group in _SPACES else "")
    stray = next((c for c in number if c not in allowed), None)
    if stray is not None or not any(c in _DIGITS for c in number):
        what = f"“{stray}” is not part of an amount" if stray is not None else f"“{shown}” is not an amount"
        raise MoneyParseError(
            f"{what} in {locale.get_display_name('en')} notation: digits, “{group}” between thousands "
            f"(or nothing) and “{decimal}” before the decimals, e.g. {example}."
            + (" Check the language your browser asks for." if stray in (".", ",", "'") else ""),
            code="notation",
        )


def _parse_strict(number: str, *, shown: str, currency: str, locale: Locale) -> Decimal:
    group, decimal = get_group_symbol(locale), get_decimal_symbol(locale)
    if group in _SPACES:
        number = re.sub(f"[{_SPACES}]", group, number)
    try:
        return parse_decimal(number, locale=locale, strict=True)
    except NumberFormatError as error:
        readings = []
        exponent = CURRENCY_EXPONENTS.get(currency, 2)
        for suggestion in getattr(error, "suggestions", None) or []:
            value = parse_decimal(suggestion, locale=locale)
            if 0 < value <= minor_to_decimal(MAX_MINOR_AMOUNT, currency) and -value.as_tuple().exponent <= exponent:
                readings.append(format_minor(int(value.scaleb(exponent)), currency, locale))
        understood = f" It could be {' or '.join(readings)}: enter the one you mean that way." if readings else ""
        raise MoneyParseError(
            f"“{shown}” is not an amount in {locale.get_display_name('en')} notation, where “{group}” separates "
            f"thousands (1{group}234) and “{decimal}” the decimals.{understood}",
            code="notation",
        ) from None
