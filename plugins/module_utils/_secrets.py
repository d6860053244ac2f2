# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The scrubber that keeps a password out of every message, log and report, in every form it can
take there: raw; percent-encoded as in a URL (``quote``, ``quote_plus``, Jinja's ``urlencode``, upper
or lower case hexadecimal, or any mix of them); quoted as in libpq's ``keyword='value'`` form
(``\\'`` and ``\\\\``); JSON-escaped (``\\u00fc``, ``\\"``). No import beyond the standard library:
the controller's filters use it too."""

from __future__ import annotations

import re
from typing import Any, Iterable

MASK = "********"


def _any_case(digits: str) -> str:
    """Hexadecimal digits, each letter in either case."""
    return "".join(f"[{d.upper()}{d.lower()}]" if d.isalpha() else d for d in digits)


def _hex_byte(byte: int) -> str:
    """One byte as ``%XX`` with either case of each hexadecimal letter."""
    return "%" + _any_case(f"{byte:02X}")


def _char_pattern(char: str) -> str:
    """Every way one character of the secret may be written in a URL, a libpq conninfo or JSON."""
    forms = [re.escape(char)]
    encoded = char.encode("utf-8")
    forms.append("".join(_hex_byte(b) for b in encoded))
    if char == " ":
        forms.append(r"\+")
    if char in "'\\\"":
        forms.append(re.escape("\\" + char))  # libpq's quoted value, or a JSON string
    if ord(char) > 0x7E or ord(char) < 0x20:  # JSON's \uXXXX, a surrogate pair beyond the BMP
        units = char.encode("utf-16-be")
        codes = [units[i] << 8 | units[i + 1] for i in range(0, len(units), 2)]
        forms.append("".join(r"\\u" + _any_case(f"{code:04x}") for code in codes))
    return "(?:" + "|".join(forms) + ")"


def secret_pattern(secret: str) -> re.Pattern[str]:
    """A pattern matching the secret in any of its forms, character by character."""
    return re.compile("".join(_char_pattern(c) for c in secret))


def scrub(text: str, password: Any, *others: Any) -> str:
    """The text with every form of the password (and of each of ``others``) replaced by ``********``."""
    return scrub_all(text, (password, *others))


def scrub_all(text: str, secrets: Iterable[Any]) -> str:
    if not isinstance(text, str):
        text = str(text)
    for secret in sorted({str(s) for s in secrets if s not in (None, "")}, key=len, reverse=True):
        text = secret_pattern(secret).sub(MASK, text)
    return text
