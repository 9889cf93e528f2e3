"""The one exception type for errors a user can cause, said in one line, and the argument check
of the public functions (pydantic's validation of their annotations, one parameter at a time)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["CaloforgeError", "InvalidArgument", "argument", "checked", "invalid_value"]

F = TypeVar("F", bound=Callable[..., Any])


class CaloforgeError(Exception):
    """A user error: a bad file, a wrong name, an impossible request.

    The message says what was wrong and what to do; the CLI prints it on one line and exits
    with status 1, without a traceback. Programming errors are never wrapped in this type.
    """


class InvalidArgument(CaloforgeError):
    """A bad value of one parameter of a public function: ``n_events: must be positive, got 0``.

    ``parameter`` is the function's name for it, which the CLI turns into its flag."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@contextlib.contextmanager
def argument(parameter: str) -> Iterator[None]:
    """Inside, a CaloforgeError is about ``parameter``: loading what it names (an unknown
    detector, a missing model directory) fails as :class:`InvalidArgument` of that name."""
    try:
        yield
    except InvalidArgument:
        raise
    except CaloforgeError as exc:
        raise InvalidArgument(parameter, str(exc)) from None


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


def checked(func: F) -> F:
    """Check a public function's arguments against its annotations before it runs.

    Lax, as pydantic is by default: ``"3"`` is 3 and a ``str`` is a ``Path``; what cannot be
    read as the annotated type raises :class:`InvalidArgument` naming the parameter, so that a
    notebook and the CLI get the same one-line message. Unannotated parameters pass unchecked.
    The adapters are built on the first call, when every annotation can be resolved.
    """
    signature = inspect.signature(func)
    adapters: dict[str, Any] = {}

    def build() -> None:
        from pydantic import ConfigDict, InstanceOf, PydanticUserError, TypeAdapter

        config = ConfigDict(arbitrary_types_allowed=True)
        for name, hint in typing.get_type_hints(func).items():
            if name != "return" and hint is not Any:
                try:
                    adapters[name] = TypeAdapter(hint, config=config)
                except PydanticUserError:  # a dataclass or model of its own: taken as it is
                    adapters[name] = TypeAdapter(InstanceOf[hint])

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from pydantic import ValidationError

        if not adapters:
            build()
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise CaloforgeError(f"{func.__name__}: {exc}") from None
        for name, value in bound.arguments.items():
            if name in adapters:
                try:
                    bound.arguments[name] = adapters[name].validate_python(value)
                except ValidationError as exc:
                    raise InvalidArgument(name, _reason(exc, value)) from None
        return func(*bound.args, **bound.kwargs)

    return wrapper  # type: ignore[return-value]


def _reason(exc: Exception, value: Any) -> str:
    """What pydantic found wrong with ``value``, in a few words: the first failed alternative."""
    first = exc.errors()[0]  # type: ignore[attr-defined]
    message = first["msg"][0].lower() + first["msg"][1:]
    return f"{message}, got {type(value).__name__} {value!r}"[:300]
