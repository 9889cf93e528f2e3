"""How the report and the terminal write numbers: significant digits, fixed decimals, a value
with its error, and n/a for whatever was not computed (None, NaN, or null in metrics.json)."""

from __future__ import annotations

import math
from typing import Any

from caloforge.evaluation.schema import finite

__all__ = ["finite", "fixed", "percent", "sig", "with_error", "worst_features"]


def sig(value: Any, digits: int = 3) -> str:
    """``digits`` significant digits, or n/a for a missing or non-finite value.

    Example:
        >>> sig(0.012345), sig(None)
        ('0.0123', 'n/a')
    """
    if not finite(value):
        return "n/a"
    return f"{float(value):.{digits}g}"


def fixed(value: Any, decimals: int) -> str:
    """``decimals`` decimals, or n/a for a missing or non-finite value."""
    return f"{float(value):.{decimals}f}" if finite(value) else "n/a"


def percent(value: Any, decimals: int = 0) -> str:
    """A fraction as a percentage, or – for a missing or non-finite value."""
    return f"{value:.{decimals}%}" if finite(value) else "–"


def with_error(value: Any, error: Any) -> str:
    """``value ± error``, rounded to the error's second significant digit.

    Example:
        >>> with_error(0.1234, 0.056)
        '0.123 ± 0.056'
    """
    if not finite(value):
        return "n/a"
    value = float(value)
    if not finite(error) or float(error) <= 0:
        return sig(value)
    error = float(error)
    decimals = max(0, 1 - math.floor(math.log10(error)))
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"


def worst_features(metrics: dict[str, Any], n: int) -> list[tuple[str, float]]:
    """The ``n`` features of largest separation power, ties in name order."""
    powers = metrics.get("separation_power") or {}
    finite_powers = [(name, float(v)) for name, v in powers.items() if finite(v)]
    return sorted(finite_powers, key=lambda item: (-item[1], item[0]))[:n]
