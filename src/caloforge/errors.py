"""The one exception type for errors a user can cause, and pydantic's errors said in one line."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CaloforgeError", "invalid_value"]


class CaloforgeError(Exception):
    """A user error: a bad file, a wrong name, an impossible request.

    The message says what was wrong and what to do; the CLI prints it on one line and exits
    with status 1, without a traceback. Programming errors are never wrapped in this type.
    """


def invalid_value(exc: Exception, name: Callable[[str], str] = str) -> CaloforgeError:
    """A pydantic ``ValidationError`` as one line naming the value: ``steps: must be greater
    than 0, got 0``. ``name`` turns a field name into what the caller calls it (a CLI flag)."""
    first = exc.errors()[0]  # type: ignore[attr-defined]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"][0].lower() + first["msg"][1:]
    got = first.get("input")
    shown = f", got {got!r}" if not isinstance(got, dict) and first["type"] != "missing" else ""
    count = exc.error_count()  # type: ignore[attr-defined]
    more = f" (and {count - 1} more)" if count > 1 else ""
    return CaloforgeError(f"{name(where) if where else 'value'}: {message}{shown}{more}")
