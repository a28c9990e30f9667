"""Typed errors with messages a user can act on.

Errors are raised deep in the library and turned into one clear message at the
edge: the CLI prints the message and exits with status 1, the app raises
``gr.Error``.
"""

from __future__ import annotations


class CarmatchError(Exception):
    """Base class for every error carmatch reports to a user."""


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
