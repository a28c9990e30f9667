"""Typed errors that carry what went wrong as data, with a default message a user can act on.

Errors are raised deep in the library with the facts: which input (``field``), the ``value``
given, the ``limit`` it broke, and a ``hint`` on what to do. ``str(exc)`` is a complete sentence
naming each field by the library's own label. Each edge phrases the same data for its audience
with :meth:`CarmatchError.describe`: the CLI names the field by its flag and exits with status 1
(``admin/cli.py``), the app names it by the label on screen and raises ``gr.Error``
(``carmatch/ui/phrasing.py``).

A limit is a number (the maximum), a ``(min, max)`` pair (either end may be ``None``), or a
collection of allowed values. An error with no field data is raised with its whole message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

E = TypeVar("E", bound="CarmatchError")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_range(limit: Any) -> bool:
    return (
        isinstance(limit, tuple)
        and len(limit) == 2
        and all(end is None or _is_number(end) for end in limit)
        and limit != (None, None)
    )


def limit_reason(value: Any, limit: Any) -> str:
    """What breaking ``limit`` with ``value`` means, without naming the field: ``must be between 1 and 48 (got 0)``."""
    if _is_range(limit):
        low, high = limit
        if low is None:
            return f"must be at most {high} (got {value})"
        if high is None:
            return f"must be at least {low} (got {value})"
        return f"must be between {low} and {high} (got {value})"
    if _is_number(limit):
        return f"must be at most {limit} (got {value})"
    if isinstance(limit, (list, tuple, set, frozenset)):
        return f"must be one of {', '.join(str(choice) for choice in limit)} (got {value!r})"
    if value is None or value == "":
        return "is missing"
    return f"is not valid (got {value!r})"


@dataclass(frozen=True)
class Problem:
    """One input that cannot be used: which field, the value given, the limit it broke, and why."""

    field: str  # the input's name in the library, e.g. "k", "batch_size", "bucket"
    value: Any = None
    limit: Any = None
    reason: str = ""  # what is wrong, without naming the field; derived from value and limit when empty
    label: str = ""  # the library's own name for the field in messages; the field name when empty

    def describe(self, name: str | None = None) -> str:
        """The problem as a clause naming the field ``name`` (default: the library's label)."""
        subject = name or self.label or self.field.replace("_", " ")
        return f"{subject} {self.reason or limit_reason(self.value, self.limit)}"


class CarmatchError(Exception):
    """Base class for every error carmatch reports to a user.

    ``CarmatchError("whole message")`` raises a plain message. With field data, either one
    problem (``field=``, ``value=``, ``limit=``, ``reason=``, ``label=``) or several
    (``problems=[...]``, the message then leading them in), the message is built from the data.
    ``hint`` is a sentence on what to do, appended after the problems.
    """

    def __init__(
        self,
        message: str = "",
        *,
        field: str | None = None,
        value: Any = None,
        limit: Any = None,
        reason: str = "",
        label: str = "",
        hint: str = "",
        problems: Sequence[Problem] = (),
    ):
        single = [Problem(field, value, limit, reason, label)] if field is not None else []
        self.problems: tuple[Problem, ...] = (*single, *problems)
        first = self.problems[0] if self.problems else Problem("")
        self.field: str | None = first.field or None  # the first problem's field, value and limit
        self.value: Any = first.value
        self.limit: Any = first.limit
        self.hint = hint
        self.lead = message
        super().__init__(self.describe())

    def describe(self, names: Mapping[str, str] | None = None, hint: str | None = None) -> str:
        """The message with each field called ``names[field]`` (default: its label) and ``hint`` (default: own)."""
        names = names or {}
        text = self.lead
        if self.problems:
            clauses = "; ".join(p.describe(names.get(p.field)) for p in self.problems)
            text = f"{text}: {clauses}" if text else clauses
            text = text if text.endswith((".", "!", "?")) else text + "."
        hint = self.hint if hint is None else hint
        return f"{text} {hint}".strip() if hint else text

    def rephrased(self: E, names: Mapping[str, str] | None = None, hint: str | None = None) -> E:
        """The same error (type, data and attributes) with its message phrased by :meth:`describe`."""
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.args = (self.describe(names, hint),)
        return copy


class ConfigError(CarmatchError):
    """A setting is missing or invalid."""


class InvalidInputError(CarmatchError):
    """A query, file or parameter given by the user cannot be used."""


class ImageError(InvalidInputError):
    """An image is unreadable, corrupt, too large or not an image."""


class ModelLoadError(CarmatchError):
    """The CLIP model or its weights could not be loaded."""


class IndexMissingError(CarmatchError):
    """No search index exists yet."""


class ModelMismatchError(CarmatchError):
    """An index or embedding was built by a different model than the active one."""


class EmptyCollectionError(CarmatchError):
    """The collection holds no images to search."""


class NotFoundError(CarmatchError):
    """An image, job, run or record id does not exist."""


class ConflictError(CarmatchError):
    """Someone else changed the record since it was loaded."""


class AccessDeniedError(CarmatchError):
    """The action needs the admin password."""


class AwsError(CarmatchError):
    """An AWS call failed (credentials, permissions, region, quota)."""


class BusyError(CarmatchError):
    """Another long-running job (training, rebuild) is already running."""


class CancelledError(CarmatchError):
    """A long-running job was cancelled by the user."""


class StorageError(CarmatchError):
    """The home folder, database or disk cannot be used: corrupt, unreadable, read-only, full or not a folder."""
