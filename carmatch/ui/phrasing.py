"""Library errors phrased for the browser: each field named by the label on screen.

The library raises errors carrying which field was wrong (see :mod:`carmatch.errors`); the
tabs lay out their inputs with the labels below, and :func:`phrased` re-raises an action's
error with those labels, so the message names what the person sees. No Gradio here:
:func:`carmatch.ui.common.user_errors` turns the phrased message into ``gr.Error``.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from typing import Any, TypeVar

from carmatch.errors import CarmatchError
from carmatch.ui.public import scrub_paths

F = TypeVar("F", bound=Callable[..., Any])

# Library field name -> the label of the input that sets it, in whichever tab has it.
FIELD_LABELS = {
    # Search
    "text": "Description",
    "k": "Results",
    "image_weight": "Photo weight",
    # Dataset
    "caption": "Caption",
    "bucket": "S3 bucket",
    "prefix": "Prefix (folder)",
    "role_arn": "Batch service role ARN",
    "s3_prefix": "S3 prefix (titan)",
    # Training
    "epochs": "epochs",
    "batch_size": "batch size",
    "accum_steps": "gradient accumulation",
    "lr": "learning rate",
    "unfreeze": "unfreeze last K blocks",
    "caption_views": "caption views",
    "hard_negatives": "hard negatives",
}

# Library field name -> what to do in the app, replacing the library's hint (which names CLI commands).
FIELD_HINTS = {
    "batch_records": (
        "Caption them live instead: in the app, open Bulk actions, choose 'everything matching the filters' "
        "and 'caption with Claude'."
    ),
}


def for_browser(exc: CarmatchError) -> str:
    """The error's message with every field named by its on-screen label and the app's hint; no server paths."""
    if not exc.problems:
        return scrub_paths(str(exc))
    return scrub_paths(exc.describe(FIELD_LABELS, FIELD_HINTS.get(exc.field or "")))


_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character, as CommonMark lets escape


def as_text(value: object) -> str:
    """Markdown that shows ``value`` verbatim: no HTML, link, image, emphasis or heading is interpreted."""
    return _PUNCTUATION.sub(r"\\\1", str(value))


def as_code(value: object) -> str:
    """A Markdown code span showing ``value`` verbatim, whatever backticks it holds."""
    text = str(value).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def as_html(message: str) -> str:
    """``message`` escaped for an HTML context (Gradio renders a gr.Error's message as HTML)."""
    return html.escape(message, quote=False)


def phrased(fn: F) -> F:
    """Decorate an action so the CarmatchError it raises (same type and data) speaks in on-screen labels."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CarmatchError as exc:
            if not exc.problems:
                raise
            raise exc.rephrased(FIELD_LABELS, FIELD_HINTS.get(exc.field or "")) from exc

    return wrapper  # type: ignore[return-value]
