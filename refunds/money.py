"""Money is (minor_amount: int, currency: str), never a float."""

from dataclasses import dataclass
from decimal import Decimal

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


def format_minor(minor_amount: int | None, currency: str) -> str:
    if minor_amount is None:
        return "—"
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return f"{minor_to_decimal(minor_amount, currency):,.{exponent}f} {currency}"


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
