"""RFC 8785 JSON Canonicalization Scheme (JCS) and the content hash of medical records. Pure.

A phone (JavaScript, Kotlin, Swift) and the hub must produce the same bytes for the same record,
or every sync would look like a conflict. JCS fixes them: object keys sorted by their UTF-16 code
units, no insignificant whitespace, strings escaped as ECMAScript's JSON.stringify does, and
numbers serialized as ECMAScript's Number.prototype.toString (RFC 8785 section 3.2.2.3). Numbers
are IEEE-754 doubles there: an integer is written as ECMAScript writes the nearest double (2**60
as 1152921504606847000, 2**53 + 1 as 9007199254740992, exactly what JSON.parse on a phone does);
non-finite numbers and integers beyond the double range are refused.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from wire.errors import DecodeError

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_MAX_DEPTH = 64


class NotCanonicalizable(DecodeError):
    """The value cannot be represented identically on every platform (NaN, huge integer, ...)."""


def canonical(value: Any) -> bytes:  # noqa: ANN401 - any JSON value
    """The RFC 8785 canonical UTF-8 bytes of a JSON value (dict, list, str, number, bool, None)."""
    parts: list[str] = []
    _write(value, parts, 0)
    return "".join(parts).encode("utf-8", "surrogatepass")


def content_hash(payload: Any) -> str:  # noqa: ANN401 - any JSON value
    """`sha256:` + hex SHA-256 of the canonical bytes: the hash a phone sends with a record."""
    return "sha256:" + hashlib.sha256(canonical(payload)).hexdigest()


def es6_number(value: float) -> str:
    """ECMAScript Number::toString of a finite double (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(value):
        raise NotCanonicalizable(f"{value} is not a finite number")
    if value == 0:
        return "0"  # also -0
    sign = "-" if value < 0 else ""
    digits, n = _shortest(abs(value))
    k = len(digits)
    if k <= n <= 21:  # noqa: PLR2004 - ECMA-262 Number::toString step 6
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:  # noqa: PLR2004 - step 7
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:  # noqa: PLR2004 - step 8
        text = "0." + "0" * -n + digits
    else:  # steps 9-10: exponent form
        exponent = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"
    return sign + text


def _shortest(value: float) -> tuple[str, int]:
    """(digits, n) with value = 0.digits x 10**n and digits the shortest round-trip ones."""
    mantissa, _, exp = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exp or 0)  # position of the decimal point in whole+fraction
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    digits = digits.rstrip("0") or "0"
    return digits, point - leading_zeros


def _write(value: Any, out: list[str], depth: int) -> None:  # noqa: ANN401 - any JSON value
    if depth > _MAX_DEPTH:
        raise NotCanonicalizable("nested deeper than 64 levels")
    if isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _write(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise NotCanonicalizable("object keys must be strings")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_units)):
            out.append(("," if i else "") + _string(key) + ":")
            _write(value[key], out, depth + 1)
        out.append("}")
    else:
        out.append(_scalar(value))


def _scalar(value: Any) -> str:  # noqa: ANN401 - any JSON scalar
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):  # a JSON number is the nearest double, as JSON.parse makes it
        try:
            return es6_number(float(value))
        except OverflowError:
            raise NotCanonicalizable(f"integer {value} is beyond any double") from None
    if isinstance(value, float):
        return es6_number(value)
    if isinstance(value, str):
        return _string(value)
    raise NotCanonicalizable(f"{type(value).__name__} is not a JSON value")


def _utf16_units(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:  # noqa: PLR2004 - controls, lone surrogates
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
