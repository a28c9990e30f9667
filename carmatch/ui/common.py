"""Helpers shared by the app's tabs: library errors as gr.Error, progress, the photo input."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from carmatch.errors import CarmatchError
from carmatch.ui.phrasing import for_browser

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Decorate an event handler so a CarmatchError reaches the browser as a gr.Error in on-screen labels."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CarmatchError as exc:
            log.info("%s: %s", fn.__name__, exc)
            raise gr.Error(for_browser(exc), print_exception=False) from exc

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
