"""Every bad input tried against carmatch, with the message a user sees; each is refused and changes nothing.

Environment faults (corrupt catalog, wrong home, read-only home, full disk, malformed model config)
are in tests/cli/test_environment_faults.py, through the CLI a user runs; the same faults at app start
in tests/test_app_startup.py, and a truly read-only home (as an unprivileged user) in
tests/test_read_only_home.py. Over-limit Search-tab events are in tests/ui/test_search_limits.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carmatch.bounds import check_selection
from carmatch.catalog import Catalog
from carmatch.dataset.curation import Query, page
from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.search.searcher import check_query
from carmatch.training.config import TrainConfig
from carmatch.ui.phrasing import as_text

NAN, INF = float("nan"), float("inf")
CAPTION_498_WORDS = " ".join(["red"] * 498)


def search_with(k: Any = 12, image_weight: Any = 0.5) -> Callable[[Catalog], object]:
    return lambda _catalog: check_query("red pickup", None, k, image_weight)


def train_with(**settings: Any) -> Callable[[Catalog], object]:
    return lambda _catalog: TrainConfig(model="tiny", pretrained="none", **settings).validate()


def page_with(number: Any = 1, page_size: Any = 48, text: str = "") -> Callable[[Catalog], object]:
    return lambda catalog: page(catalog, Query(text=text), number, page_size)


BAD_INPUTS = [  # (what a user tried, the call, field, limit, the message they see)
    ("k=NaN", search_with(k=NAN), "k", (1, 200), "The number of results must be a whole number (got nan)."),
    ("k=inf", search_with(k=INF), "k", (1, 200), "The number of results must be a whole number (got inf)."),
    ("k=0", search_with(k=0), "k", (1, 200), "The number of results must be between 1 and 200 (got 0)."),
    ("k=1e9", search_with(k=1e9), "k", (1, 200), "The number of results must be between 1 and 200 (got 1000000000.0)."),
    ("k='a'", search_with(k="a"), "k", (1, 200), "The number of results must be a whole number (got 'a')."),
    ("k=2.5", search_with(k=2.5), "k", (1, 200), "The number of results must be a whole number (got 2.5)."),
    (
        "image weight NaN",
        search_with(image_weight=NAN),
        "image_weight",
        (0, 1),
        "The image weight must be a number (got nan).",
    ),
    (
        "image weight 2",
        search_with(image_weight=2),
        "image_weight",
        (0, 1),
        "The image weight must be between 0 and 1 (got 2).",
    ),
    (
        "epochs=1e9",
        train_with(epochs=int(1e9)),
        "epochs",
        (None, 1000),
        "Invalid training settings: --epochs must be at most 1000 (got 1000000000).",
    ),
    (
        "epochs=NaN",
        train_with(epochs=NAN),
        "epochs",
        (None, 1000),
        "Invalid training settings: --epochs must be a whole number (got nan).",
    ),
    (
        "accum=NaN",
        train_with(accum_steps=NAN),
        "accum_steps",
        (None, 1024),
        "Invalid training settings: --accum-steps must be a whole number (got nan).",
    ),
    (
        "batch size inf",
        train_with(batch_size=INF),
        "batch_size",
        (None, 4096),
        "Invalid training settings: --batch-size must be a whole number (got inf).",
    ),
    (
        "batch size 1e6",
        train_with(batch_size=10**6),
        "batch_size",
        (None, 4096),
        "Invalid training settings: --batch-size must be at most 4096 (got 1000000).",
    ),
    ("lr=NaN", train_with(lr=NAN), "lr", (None, 1.0), "Invalid training settings: --lr must be a number (got nan)."),
    ("lr=5", train_with(lr=5.0), "lr", (None, 1.0), "Invalid training settings: --lr must be at most 1.0 (got 5.0)."),
    (
        "weight decay inf",
        train_with(weight_decay=INF),
        "weight_decay",
        (None, 10),
        "Invalid training settings: --weight-decay must be a number (got inf).",
    ),
    ("page NaN", page_with(number=NAN), "page", (None, None), "The page number must be a whole number (got nan)."),
    ("page 'a'", page_with(number="a"), "page", (None, None), "The page number must be a whole number (got 'a')."),
    ("page size NaN", page_with(page_size=NAN), "page_size", (1, 500), "Page size must be a whole number (got nan)."),
    (
        "caption contains 498 words",
        page_with(text=CAPTION_498_WORDS),
        "caption_contains",
        20,
        "The caption filter has too many words: use at most 20 (got 498).",
    ),
    (
        "caption contains 5,000 characters",
        page_with(text="x" * 5000),
        "caption_contains",
        200,
        "The caption filter is too long: use at most 200 characters (got 5000).",
    ),
]


@pytest.mark.parametrize(("tried", "call", "field", "limit", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_with_its_message(
    tried: str, call: Callable[[Catalog], object], field: str, limit: object, message: str
) -> None:
    with Catalog(":memory:") as catalog:
        with pytest.raises(InvalidInputError) as refused:
            call(catalog)
        assert str(refused.value) == message
        assert refused.value.field == field and refused.value.limit == limit
        assert catalog.count() == 0


def test_a_long_caption_filter_within_bounds_still_searches() -> None:
    with Catalog(":memory:") as catalog:
        assert page(catalog, Query(text=" ".join(["red"] * 20))).total == 0
        assert page(catalog, Query(), number=10**9).page == 1  # past the last page: the last one


TAMPERED_INDEXES = [  # what a hostile client sent as a gallery select event's index, and the value quoted back
    ("a", "'a'"),
    (float("nan"), "nan"),
    (-1, "-1"),
    (99, "99"),
    (None, "None"),
    ("1e9", "'1e9'"),
    ([], "[]"),
    ({"x": 1}, "{'x': 1}"),
    ("9" * 500, "'" + "9" * 36 + "…"),
]


@pytest.mark.parametrize(("index", "quoted"), TAMPERED_INDEXES, ids=[repr(i)[:12] for i, _ in TAMPERED_INDEXES])
def test_a_tampered_search_result_select_says_so_and_find_similar_asks_to_select(index: Any, quoted: str) -> None:
    from carmatch.ui import search_actions

    results = [{"id": "abc", "file": "missing.jpg", "score": 0.5, "caption": "red car"}]
    image, text = search_actions.detail(results, index)
    assert image is None
    assert text == "⚠️ " + as_text(f"The selected result is not one of the 1 shown (got {quoted}); select one again.")
    with pytest.raises(InvalidInputError, match="Select a result first, then press Find similar."):
        search_actions.similar_source(None, None if isinstance(index, str) else index)  # type: ignore[arg-type]


def test_select_index_checks_in_the_library() -> None:
    assert check_selection(2, 3) == 2 and check_selection([1, 0], 3) == 1  # a [row, column] index: its row
    with pytest.raises(InvalidInputError) as refused:
        check_selection("a", 3, "thumbnail", "The clicked thumbnail")
    assert str(refused.value) == "The clicked thumbnail is not one of the 3 shown (got 'a'); select one again."
    assert refused.value.field == "thumbnail" and refused.value.limit == (0, 2)
    with pytest.raises(InvalidInputError, match="nothing is shown to select"):
        check_selection(0, 0)


@pytest.mark.parametrize(("index", "quoted"), TAMPERED_INDEXES, ids=[repr(i)[:12] for i, _ in TAMPERED_INDEXES])
def test_a_tampered_dataset_thumbnail_click_says_so_and_changes_nothing(
    runtime: Runtime, car_folder: Path, index: Any, quoted: str
) -> None:
    import gradio as gr

    from carmatch.ui import dataset_tab

    runtime.ingestor().ingest_folder(car_folder)
    with gr.Blocks() as demo:
        dataset_tab.build(demo, runtime)
    click = next(f.fn for f in demo.fns.values() if f.fn is not None and f.fn.__name__ == "on_select")
    ids = runtime.catalog.ids()[:3]
    for select_mode in (False, True):
        shown = click(ids, select_mode, [ids[0]], [], 0, True, gr.SelectData(None, {"index": index, "value": None}))
        message = shown[dataset_tab.EDITOR_OUTPUTS - 2]
        expected = f"The clicked thumbnail is not one of the 3 shown (got {quoted}); select one again."
        assert message == "⚠️ " + as_text(expected)
        assert all(value == gr.update() for i, value in enumerate(shown) if i != dataset_tab.EDITOR_OUTPUTS - 2)
    opened = click(ids, False, [], [], None, False, gr.SelectData(None, {"index": 1, "value": None}))
    assert opened[0] == ids[1]  # a real click still opens the image


def test_a_disk_fault_in_an_app_action_is_a_message_not_a_blank_error() -> None:
    import errno

    import gradio as gr

    from carmatch.ui.common import user_errors

    @user_errors
    def save() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/home/index/CURRENT")

    with pytest.raises(gr.Error) as shown:
        save()
    assert "is full: free some space and run it again." in shown.value.message
