"""The Dataset tab's editor: the picture, its state, caption, attributes, buttons, messages and history.

Layout (:func:`build`) and wiring (:func:`wire`); the logic is in :mod:`carmatch.ui.dataset_actions`.
Compact enough that picture, state, caption, attributes and buttons fit a 1366×768 screen beside
the grid (the stylesheet keeps the column in view while the grid scrolls).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import gradio as gr

from carmatch.catalog import ATTRIBUTE_COLUMNS
from carmatch.dataset import curation
from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui import dataset_actions as actions
from carmatch.ui import dataset_selection
from carmatch.ui.common import user_errors
from carmatch.ui.phrasing import FIELD_LABELS, as_text, for_browser

log = logging.getLogger(__name__)

EDIT_BUTTONS = ("save", "approve", "reject", "undo")  # disabled while the tab is locked
EDITOR_OUTPUTS = 8 + len(ATTRIBUTE_COLUMNS)  # id, version, image, meta, caption, attributes, history, message, conflict


def editor_values(view: actions.EditorView) -> tuple[Any, ...]:
    """An EditorView as the values of the editor's output components, in order."""
    return (
        view.image_id,
        view.version,
        view.image,
        view.meta,
        view.caption,
        *[view.attributes.get(key, "") for key in ATTRIBUTE_COLUMNS],
        view.history,
        view.message,
        gr.update(value=view.conflict, visible=bool(view.conflict)),
    )


def build() -> dict[str, Any]:
    """The editor, compact enough to show picture, state, caption, attributes and buttons at 1366×768."""
    big = gr.Image(label="Selected", interactive=False, height=300, elem_id="dataset-image")
    meta = gr.Markdown("_Select an image in the grid._", elem_id="dataset-meta")
    caption = gr.Textbox(
        label=f"{FIELD_LABELS['caption']} (Enter = save, approve and go to the next unreviewed)",
        lines=1,  # one line: Enter submits (a multi-line box would take it as a newline)
        max_lines=6,
        max_length=curation.MAX_CAPTION_CHARS,
        elem_id="dataset-caption",
        interactive=False,
    )
    with gr.Row():
        attr_boxes = [
            gr.Textbox(label=key.replace("_", " "), min_width=90, elem_id=f"dataset-attr-{key}", interactive=False)
            for key in ATTRIBUTE_COLUMNS
        ]
    with gr.Row(elem_classes="cm-editor-buttons"):
        buttons = {
            "save": gr.Button("Save", variant="primary", size="sm", elem_id="dataset-save", interactive=False),
            "approve": gr.Button("Approve ✓", size="sm", elem_id="dataset-approve", interactive=False),
            "reject": gr.Button("Reject ✗", size="sm", elem_id="dataset-reject", interactive=False),
            "skip": gr.Button("Skip →", size="sm", elem_id="dataset-skip"),
            "undo": gr.Button("Undo ↩", size="sm", elem_id="dataset-undo", interactive=False),
        }
    with gr.Row(elem_classes="cm-editor-buttons"):
        buttons["image_prev"] = gr.Button("◀ Previous (P)", size="sm", elem_id="dataset-image-prev")
        buttons["image_next"] = gr.Button("Next (N) ▶", size="sm", elem_id="dataset-image-next")
        buttons["reload"] = gr.Button("Reload", size="sm", elem_id="dataset-reload")
    message = gr.Markdown(elem_id="dataset-message")
    conflict = gr.Markdown(visible=False, elem_id="dataset-conflict")
    gr.Markdown(dataset_selection.KEYS_HELP, elem_id="dataset-keys")
    gr.Markdown("**History** (newest first; words added and removed against the version before)")
    history = gr.HTML(actions.EMPTY_HISTORY, elem_id="dataset-history")
    # the open image's id in a hidden box (not a State): the page's script writes it into the URL
    current_id, current_version = gr.Textbox(visible=False, elem_id="dataset-open-id"), gr.State(-1)
    outputs = [current_id, current_version, big, meta, caption, *attr_boxes, history, message, conflict]
    return {
        "id": current_id,
        "version": current_version,
        "caption": caption,
        "attrs": attr_boxes,
        **buttons,
        "outputs": outputs,
    }


def _kept_on_refusal(fn: Any) -> Any:
    """Decorate an editor handler: a refusal shows in the message line and leaves every other field as it was."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> tuple[Any, ...]:
        try:
            return fn(*args)  # type: ignore[no-any-return]
        except CarmatchError as exc:
            log.info("%s refused: %s", fn.__name__, exc)
            kept: list[Any] = [gr.update() for _ in range(EDITOR_OUTPUTS)]
            kept[-2] = f"❌ {as_text(for_browser(exc))}"
            return tuple(kept)

    return wrapper


def wire(
    runtime: Runtime, session_password: gr.State, filters: list[Any], editor: dict[str, Any], refresh_after: Any
) -> None:
    """Save, approve (button or Enter), reject, skip, undo and reload; writes redraw the grid."""
    n_attrs = len(ATTRIBUTE_COLUMNS)

    @_kept_on_refusal
    def on_save(pw: str, image_id: str, version: int, text: str, *rest: Any) -> tuple[Any, ...]:
        attrs, query = rest[:n_attrs], actions.query_from_inputs(rest[n_attrs:])
        return editor_values(actions.save(runtime, pw, image_id, version, text, attrs, query))

    @_kept_on_refusal
    def on_approve(pw: str, image_id: str, version: int, text: str, *rest: Any) -> tuple[Any, ...]:
        attrs, query = rest[:n_attrs], actions.query_from_inputs(rest[n_attrs:])
        view = actions.save(runtime, pw, image_id, version, text, attrs, query, "approved", advance=True)
        return editor_values(view)

    @_kept_on_refusal
    def on_reject(pw: str, image_id: str, version: int, *values: Any) -> tuple[Any, ...]:
        view = actions.review(runtime, pw, image_id, version, "rejected", actions.query_from_inputs(values))
        return editor_values(view)

    @user_errors
    def on_skip(image_id: str, *values: Any) -> tuple[Any, ...]:
        return editor_values(actions.skip(runtime, image_id, actions.query_from_inputs(values)))

    @_kept_on_refusal
    def on_undo(pw: str, image_id: str, version: int) -> tuple[Any, ...]:
        return editor_values(actions.undo(runtime, pw, image_id, version))

    def on_reload(image_id: str) -> tuple[Any, ...]:
        return editor_values(actions.open_image(runtime, image_id or None))

    outputs, current = editor["outputs"], [session_password, editor["id"], editor["version"]]
    edit_inputs = [*current, editor["caption"], *editor["attrs"], *filters]
    private = {"api_visibility": "private"}
    refresh_after(editor["save"].click(on_save, edit_inputs, outputs, **private))
    refresh_after(editor["approve"].click(on_approve, edit_inputs, outputs, **private))
    refresh_after(editor["caption"].submit(on_approve, edit_inputs, outputs, **private))
    refresh_after(editor["reject"].click(on_reject, [*current, *filters], outputs, **private))
    editor["skip"].click(on_skip, [editor["id"], *filters], outputs, **private)
    refresh_after(editor["undo"].click(on_undo, current, outputs, **private))
    editor["reload"].click(on_reload, [editor["id"]], outputs, **private)
