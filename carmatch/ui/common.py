"""Helpers shared by the app's tabs: library errors as gr.Error, progress, the photo input."""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from carmatch.access import PASSWORD_THROTTLE, UnlockThrottle, admin_enabled, check_admin, client_key
from carmatch.catalog.faults import environment_fault
from carmatch.errors import AccessDeniedError, CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui.dataset_actions import access_note, unlock
from carmatch.ui.phrasing import as_html, for_browser

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
UNLOCK_THROTTLE = PASSWORD_THROTTLE  # one per app process: every admin password box shares it


def user_errors(fn: F) -> F:
    """Decorate an event handler so a CarmatchError reaches the browser as a gr.Error in on-screen labels."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CarmatchError as exc:
            log.info("%s: %s", fn.__name__, exc)
            raise gr.Error(as_html(for_browser(exc)), print_exception=False) from exc
        except (OSError, sqlite3.Error) as exc:  # a full disk, a read-only home: a message, not a blank "Error"
            fault = environment_fault(exc)
            if fault is None:
                raise
            log.warning("%s: %s", fn.__name__, fault)
            raise gr.Error(as_html(for_browser(fault)), print_exception=False) from exc

    return wrapper  # type: ignore[return-value]


def progress_adapter(progress: Any) -> Callable[[int, int, str], None]:
    """Adapt a gr.Progress to carmatch's progress(done, total, message) callback."""

    def report(done: int, total: int, message: str) -> None:
        if total:
            progress((done, total), desc=message)

    return report


def photo_input(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` (type ``filepath``) that hands carmatch the uploaded file itself, undecoded.

    Plain ``gr.Image`` decodes uploads with Pillow before the handler runs, so a corrupt file or a
    decompression bomb fails inside Gradio with a generic error. carmatch validates and decodes
    the file (size and pixel limits, clear messages) instead. Upload, webcam and clipboard all
    arrive as uploaded files. (An instance override, not a subclass: Gradio writes a .pyi stub
    beside the source of every Component subclass.)
    """
    component = gr.Image(type="filepath", **kwargs)
    decode = component.preprocess

    def preprocess(payload: Any) -> Any:
        path = getattr(payload, "path", None) if payload is not None else None
        return str(path) if path else decode(payload)

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def unlock_row(runtime: Runtime, button: str, prefix: str, session_password: gr.State | None = None) -> gr.State:
    """Lay out the admin password box, its unlock button and the access note; returns the session's password state.

    The password is kept server-side in the returned ``gr.State``; every write re-checks it. Tabs
    given the same state share one login: unlocking in one unlocks (and says so in) the other.
    """
    session_password = session_password if session_password is not None else gr.State("")
    with gr.Row(equal_height=True):
        password = gr.Textbox(
            label="Admin password", type="password", scale=3, elem_id=f"{prefix}-password", max_length=200
        )
        unlock_btn = gr.Button(button, scale=1, elem_id=f"{prefix}-unlock")
    access = gr.Markdown(access_note(runtime), elem_id=f"{prefix}-access")

    def on_unlock(given: str, request: gr.Request) -> tuple[str, str, Any]:
        stored, note = guarded_unlock(runtime, UNLOCK_THROTTLE, given, client_address(request))
        return stored, note, gr.update(value="")

    unlock_btn.click(on_unlock, [password], [session_password, access, password], api_visibility="private")
    password.submit(on_unlock, [password], [session_password, access, password], api_visibility="private")

    def on_login_change(stored: str) -> str:
        return unlock(runtime, stored)[1] if stored else access_note(runtime)

    session_password.change(on_login_change, [session_password], [access], api_visibility="private")
    return session_password


def client_address(request: gr.Request | None) -> str:
    """The visitor's address: the peer, or behind a CARMATCH_TRUSTED_PROXIES proxy the hop it appended."""
    if request is None:
        return "unknown"
    headers = getattr(request, "headers", None) or {}
    client = getattr(request, "client", None)
    peer = str(getattr(client, "host", None) or "unknown")
    return client_key(peer, headers.get("x-forwarded-for", ""), os.environ.get("CARMATCH_TRUSTED_PROXIES", ""))


def guarded_unlock(runtime: Runtime, throttle: UnlockThrottle, given: str | None, client: str) -> tuple[str, str]:
    """unlock, with repeated wrong passwords from one client slowed down and logged; (session value, message)."""
    if not admin_enabled(runtime.settings):
        return unlock(runtime, given)
    try:
        check_admin(runtime.settings, given, client, throttle)
    except AccessDeniedError as exc:
        return "", f"❌ {exc} Editing stays locked."
    return given or "", "🔓 Editing unlocked for this browser session."
