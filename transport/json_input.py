"""Client JSON, read strictly: every way it can be bad is one ``ValueError`` with a reason."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["parse_json"]


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):  # 1e400: valid JSON, but Infinity if we ever echoed it
        raise ValueError(f"number {number[:40]} is out of the float range")
    return value


def parse_json(text: str | bytes) -> Any:
    """Client JSON; every way it can be bad is a ``ValueError`` (deep nesting raises
    ``RecursionError`` inside the json module, which is not one). Python's ``NaN`` and
    ``Infinity`` extensions are refused: echoed back they would break a browser's JSON.parse."""
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
