"""Text is text: captions, file names and error messages reach the page verbatim, never as Markdown or HTML."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import dataset_actions
from carmatch.ui.phrasing import as_code, as_html, as_text
from tests.ui.rendering import rendered, shown

HOSTILE = '<img src="http://tracker.example/p.png"> [t](http://evil.example) **b** _i_ # h\n1. one\n> quote & \\ `'


def test_as_text_shows_every_character_and_renders_no_markup() -> None:
    html = rendered(as_text(HOSTILE))
    assert not any(tag in html for tag in ("<img", "<a ", "<strong", "<em", "<h1", "<ol", "<blockquote", "<code"))
    assert shown(as_text(HOSTILE)) == HOSTILE


def test_as_code_survives_backticks_and_html() -> None:
    value = "a``b <img src=x>"
    assert rendered(as_code(value)).strip() == "<p><code>a``b &lt;img src=x&gt;</code></p>"


def test_error_messages_reach_the_error_modal_escaped() -> None:
    gr = pytest.importorskip("gradio")
    from carmatch.ui.common import user_errors

    @user_errors
    def handler() -> None:
        raise InvalidInputError("No image named <img src=x onerror=alert(1)>.png")

    with pytest.raises(gr.Error) as raised:
        handler()
    assert raised.value.message == "No image named &lt;img src=x onerror=alert(1)&gt;.png"
    assert as_html("a < b & c") == "a &lt; b &amp; c"


def test_the_dataset_editor_shows_a_hostile_file_name_as_text(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    name = "<img src=x>[a](http:evil)*b*.jpg"
    shutil.copy(car_folder / "red_sedan.jpg", folder / name)
    runtime.ingestor().ingest_folder(folder)
    record = runtime.catalog.find_by_path(str(folder / name))
    assert record is not None
    meta = dataset_actions.open_image(runtime, record.id).meta
    html = rendered(meta)
    assert "<img" not in html and "<a " not in html and "<em>" not in html
    assert name in shown(meta)
