"""Admin access: editing data and training need the password from CARMATCH_ADMIN_PASSWORD."""

from __future__ import annotations

import hmac

from carmatch.config import Settings
from carmatch.errors import AccessDeniedError

READ_ONLY_NOTE = (
    "Editing is disabled: this instance has no admin password. Set CARMATCH_ADMIN_PASSWORD "
    "in the environment (or .env, or the Space's secrets) and restart to enable the Dataset "
    "and Training tabs."
)


def admin_enabled(settings: Settings) -> bool:
    """True when an admin password is configured."""
    return bool(settings.admin_password)


def check_admin(settings: Settings, password: str | None) -> None:
    """Raise AccessDeniedError unless ``password`` is the configured admin password."""
    if not admin_enabled(settings):
        raise AccessDeniedError(READ_ONLY_NOTE)
    if not password:
        raise AccessDeniedError("Locked: enter the admin password to edit. Nothing was changed.")
    given = password.encode()
    if not hmac.compare_digest(given, settings.admin_password.encode()):
        raise AccessDeniedError("Wrong admin password: nothing was changed.")


def is_admin(settings: Settings, password: str | None) -> bool:
    """True when ``password`` unlocks admin actions."""
    try:
        check_admin(settings, password)
    except AccessDeniedError:
        return False
    return True
