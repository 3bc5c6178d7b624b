"""Caller numbers as the operator types them: spaces, dots, +687 or not."""

from __future__ import annotations

import re

NC_COUNTRY_CODE = "687"
NC_NATIONAL_DIGITS = 6


class BadNumber(ValueError):
    """Not something a phone number can be made from."""


def normalize(number: str) -> str:
    """Canonical national form: '+687 75.10.01' / '00687751001' / '75 10 01' -> '751001'.

    Numbers of other countries keep their country code: '+33 6 12 34 56 78' -> '33612345678'.
    """
    if not re.fullmatch(r"[\s+().\-/0-9]*", number or ""):
        raise BadNumber(number)
    digits = re.sub(r"\D", "", number)
    if digits.startswith("00"):
        digits = digits[2:]
    if digits.startswith(NC_COUNTRY_CODE) and len(digits) == len(NC_COUNTRY_CODE) + NC_NATIONAL_DIGITS:
        digits = digits[len(NC_COUNTRY_CODE):]
    if not 3 <= len(digits) <= 15:
        raise BadNumber(number)
    return digits


def same_number(a: str, b: str) -> bool:
    try:
        return normalize(a) == normalize(b)
    except BadNumber:
        return False
