"""The one check for a number a user typed: a real number (not NaN, not infinite, not text) in a sane range."""

from __future__ import annotations

import math
from typing import Any

from carmatch.errors import InvalidInputError, Problem

MAX_FILTER_CHARS = 200  # a free-text filter ("caption contains", a search box) longer than this is refused
MAX_FILTER_WORDS = 20  # each word becomes one SQL condition: SQLite's expression depth ends near 1000


def _as_number(value: Any, integer: bool) -> float | int | None:
    """``value`` as a finite number (an int when ``integer``), or None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    if integer:
        return int(number) if number.is_integer() else None
    return number


def number_problem(
    value: Any, field: str, low: float | None, high: float | None, *, integer: bool = False, label: str = ""
) -> Problem | None:
    """What is wrong with ``value`` as ``field`` (None when it is a finite number within [low, high])."""
    number = _as_number(value, integer)
    kind = "a whole number" if integer else "a number"
    if number is None:
        return Problem(field, value, (low, high), f"must be {kind} (got {value!r})", label)
    if (low is not None and number < low) or (high is not None and number > high):
        return Problem(field, value, (low, high), "", label)
    return None


def check_number(
    value: Any, field: str, low: float | None, high: float | None, *, integer: bool = False, label: str = ""
) -> Any:
    """``value`` as a number (int when ``integer``) within [low, high]; else InvalidInputError with the data."""
    problem = number_problem(value, field, low, high, integer=integer, label=label)
    if problem is not None:
        raise InvalidInputError(problems=[problem])
    return _as_number(value, integer)


def check_filter_text(value: str | None, field: str, label: str = "") -> str | None:
    """A free-text filter bounded in characters and words; None or blank stays None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    words = len(text.split())
    if words > MAX_FILTER_WORDS:
        raise InvalidInputError(
            field=field,
            value=f"{words} words",
            limit=MAX_FILTER_WORDS,
            label=label,
            reason=f"has too many words: use at most {MAX_FILTER_WORDS} (got {words})",
        )
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidInputError(
            field=field,
            value=f"{len(text)} characters",
            limit=MAX_FILTER_CHARS,
            label=label,
            reason=f"is too long: use at most {MAX_FILTER_CHARS} characters (got {len(text)})",
        )
    return text


def selection_index(value: Any, length: int) -> int | None:
    """``value`` as a position in a list of ``length`` items, or None when it is not one ('a', NaN, -1, too big).

    A select event's index may also come as ``[row, column]``: its row is the position.
    """
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    index = _as_number(value, integer=True)
    if index is None or not 0 <= index < length:
        return None
    return int(index)


def check_selection(value: Any, length: int, field: str = "selection", label: str = "The selected item") -> int:
    """``value`` (a select event's index) as a position among the ``length`` items shown; else InvalidInputError."""
    index = selection_index(value, length)
    if index is None:
        got = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "…"  # a hostile client may send anything
        reason = (
            f"is not one of the {length} shown (got {got}); select one again"
            if length
            else f"cannot be used: nothing is shown to select (got {got})"
        )
        raise InvalidInputError(
            field=field, value=value, limit=(0, length - 1) if length else None, label=label, reason=reason
        )
    return index
