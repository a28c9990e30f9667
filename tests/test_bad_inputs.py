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
from carmatch.config import Settings
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

    from carmatch.ui import dataset_editor, dataset_selection, dataset_tab

    runtime.ingestor().ingest_folder(car_folder)
    with gr.Blocks() as demo:
        dataset_tab.build(demo, runtime)
    click = next(
        f.fn
        for f in demo.fns.values()
        if f.fn is not None and f.fn.__name__ == "on_select" and f.fn.__module__ == dataset_selection.__name__
    )
    ids = runtime.catalog.ids()[:3]
    for select_mode in (False, True):
        shown = click(ids, select_mode, [ids[0]], [], 0, True, gr.SelectData(None, {"index": index, "value": None}))
        message = shown[dataset_editor.EDITOR_OUTPUTS - 2]
        expected = f"The clicked thumbnail is not one of the 3 shown (got {quoted}); select one again."
        assert message == "⚠️ " + as_text(expected)
        assert all(value == gr.update() for i, value in enumerate(shown) if i != dataset_editor.EDITOR_OUTPUTS - 2)
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


# -- issue #30: nothing curated is ever lost ----------------------------------------------------------------
# Backups, restore, damaged catalogs and `backup --to` the live catalog while the app runs:
# tests/cli/test_environment_faults.py. One password brake and trusted proxies: tests/test_access.py.
# Review decisions kept by imports and `ingest --captions`: tests/dataset/test_import_review.py. Upload bounds:
# tests/ui/test_upload_limits.py. API numbers and unknown endpoints: tests/test_app.py. The rest is here.


def test_a_staging_folder_left_by_a_killed_save_goes_at_the_next_open(tmp_path: Path) -> None:
    import threading

    from carmatch.stores.hnsw_store import IndexStore

    folder = tmp_path / "index"
    (folder / ".staging-k1ll3d" / "vectors").mkdir(parents=True)  # fresh: a kill a moment ago
    IndexStore(folder)
    assert not (folder / ".staging-k1ll3d").exists()
    store = IndexStore(folder)
    held, done = threading.Event(), threading.Event()

    def save_in_progress() -> None:
        with store.write_lock:
            held.set()
            done.wait(30)

    saver = threading.Thread(target=save_in_progress)
    saver.start()
    held.wait(30)
    (folder / ".staging-running").mkdir()  # the running save's folder
    IndexStore(folder)  # another writer holds the lock: its staging folder is left alone
    assert (folder / ".staging-running").exists()
    done.set()
    saver.join()


def test_an_undecodable_file_name_is_skipped_with_its_reason_and_the_rest_is_searchable(
    runtime: Runtime, car_folder: Path
) -> None:
    import os
    import shutil

    bad = os.fsdecode(bytes(car_folder) + b"/bad\xff-name.png")
    shutil.copy(car_folder / "blue_pickup.png", bad)  # the same picture under a name that is not UTF-8
    (car_folder / "blue_pickup.png").unlink()
    report = runtime.ingestor().ingest_folder(car_folder)
    assert report.added == 5 and [reason for _, reason in report.skipped] == [
        "its name is not valid UTF-8 text: rename the file"
    ]
    assert "bad\\xff-name.png" in report.summary()
    report.summary().encode("utf-8")  # printable
    assert sorted(runtime.store.load().ids) == sorted(runtime.catalog.ids())  # catalog and index agree
    again = runtime.ingestor().ingest_folder(car_folder)  # a rerun does not crash either
    assert again.added == 0 and len(again.skipped) == 1


def test_ingest_of_an_empty_path_is_refused(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from admin.cli import main

    assert main(["ingest", ""]) == 1
    assert "The folder to ingest is empty" in capsys.readouterr().err
    assert not settings.db_path.exists()  # nothing walked, nothing opened


def test_exports_refuse_a_device_a_link_or_a_missing_folder(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from admin.cli import main

    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "target.csv")
    for out, said in (
        ("/dev/null", "not a regular file"),
        (str(link), "symbolic link"),
        (str(tmp_path / "missing" / "out.csv"), "--parents"),
    ):
        assert main(["dataset", "export", "--format", "csv", "--out", out]) == 1
        assert said in capsys.readouterr().err
    assert not (tmp_path / "target.csv").exists() and not (tmp_path / "missing").exists()
    assert main(["dataset", "export", "--format", "csv", "--out", str(tmp_path / "new" / "out.csv"), "--parents"]) == 0


CAPTION_FILES = [  # (what a user tried, the file's bytes, the message)
    ("an unterminated quote", b'file,caption\na.jpg,"red car\nb.jpg,blue car\n', "not a valid CSV file"),
    ("a device", None, "is not a regular file"),
    ("JSON nested 100k levels", b'{"file": "a.jpg", "caption": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "nested"),
    ("not UTF-8", "file,caption\na.jpg,voiture rouge é\n".encode("latin-1"), "is not UTF-8 text"),
]


@pytest.mark.parametrize(("tried", "data", "message"), CAPTION_FILES, ids=[c[0] for c in CAPTION_FILES])
def test_a_bad_captions_file_is_one_clear_error(tmp_path: Path, tried: str, data: bytes | None, message: str) -> None:
    from carmatch.dataset.import_reading import read_import_file

    path = Path("/dev/zero") if data is None else tmp_path / ("rows.jsonl" if b"[" * 10 in data else "rows.csv")
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(InvalidInputError, match=message):
        read_import_file(path)


def test_ingest_captions_drop_nul_bytes_refuse_overlong_captions_and_stop_at_an_unterminated_quote(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    from carmatch.dataset.curation import MAX_CAPTION_CHARS

    csv = tmp_path / "captions.csv"
    long = "red " * (MAX_CAPTION_CHARS // 2)
    csv.write_bytes(f"file,caption\nred_sedan.jpg,a red\x00 sedan\nblue_pickup.png,{long}\n".encode())
    report = runtime.ingestor().ingest_folder(car_folder, csv)
    sedan = runtime.catalog.find_by_path(str(car_folder / "red_sedan.jpg"))
    assert sedan is not None and sedan.caption == "a red sedan"
    assert ("blue_pickup.png", f"caption over {MAX_CAPTION_CHARS} characters") in report.caption_rows_skipped
    csv.write_bytes(b'file,caption\nred_sedan.jpg,"a blue\nblue_pickup.png,a car\n')
    with pytest.raises(InvalidInputError, match="Cannot read captions file"):
        runtime.ingestor().ingest_folder(car_folder, csv)


@pytest.mark.parametrize(
    "content", [b"", b"garbage, not a checkpoint", b"\x80\x02]q\x00."], ids=["empty", "text", "pickle"]
)
def test_a_pretrained_file_that_is_no_checkpoint_is_one_line(
    tiny_model: tuple[str, str], tmp_path: Path, content: bytes
) -> None:
    from carmatch.embedding.embedder import load_clip
    from carmatch.errors import ModelLoadError

    bad = tmp_path / "weights.pt"
    bad.write_bytes(content)
    with pytest.raises(ModelLoadError) as refused:
        load_clip(tiny_model[0], str(bad), "cpu", True)
    said = str(refused.value)
    assert "\n" not in said and "CARMATCH_PRETRAINED" in said and str(bad) in said
    assert "is empty or not a model checkpoint" in said or "does not fit the model config" in said


def test_a_yes_no_setting_that_is_neither_is_refused() -> None:
    from carmatch.config import load_settings
    from carmatch.errors import ConfigError

    assert load_settings({"CARMATCH_OFFLINE": "off"}).offline is False
    assert load_settings({"CARMATCH_OFFLINE": "Yes"}).offline is True
    with pytest.raises(ConfigError, match="CARMATCH_OFFLINE='maybe' is not valid: use true or false"):
        load_settings({"CARMATCH_OFFLINE": "maybe"})


def test_a_settings_file_that_is_not_utf8_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from admin.cli import main
    from carmatch.config import load_dotenv_file

    (tmp_path / ".env").write_bytes("CARMATCH_ADMIN_PASSWORD=mot de passe é\n".encode("latin-1"))
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["info"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: The settings file") and "is not UTF-8 text" in err and len(err.splitlines()) == 1
    finally:
        (tmp_path / ".env").write_text("")
        load_dotenv_file(tmp_path / ".env")  # a readable file clears the fault for the tests after this one


def test_a_negative_warmup_is_refused_not_read_as_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    from admin.cli import main

    with pytest.raises(SystemExit) as refused:
        main(["train", "--warmup-steps", "-1"])
    assert refused.value.code == 2
    assert "argument --warmup-steps: must be 0 or more (got -1)" in capsys.readouterr().err


def test_a_moved_home_keeps_its_runs_checkpoints(settings: Settings, tmp_path: Path) -> None:
    import json
    import shutil

    from carmatch.locations import checkpoint_file, stored_checkpoint
    from carmatch.training import registry

    old = Runtime(settings)
    checkpoint = settings.runs_dir / "run-1" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    assert stored_checkpoint(checkpoint, settings.files_home) == "runs/run-1/best.pt"  # what new runs record
    registry.register_model(old.catalog, "run-1", "local", "tiny", "none", "ready", checkpoint=str(checkpoint))
    record = {"name": "tiny", "pretrained": str(checkpoint), "run_id": "run-1"}  # an activation before the move
    old.catalog.set_meta("active_model", json.dumps(record))
    old.close()
    moved = settings.with_overrides(home=tmp_path / "moved-home")
    shutil.copytree(settings.home, moved.home)
    shutil.rmtree(settings.home)  # the old place is gone
    new = Runtime(moved)
    try:
        where = moved.home / "runs" / "run-1" / "best.pt"
        assert registry.spec_for(new, "run-1").pretrained == str(where)  # an absolute record found again
        assert new.active_model().spec.pretrained == str(where)
        assert checkpoint_file("runs/run-1/best.pt", moved.files_home) == where  # a relative record
    finally:
        new.close()


def test_a_caption_saved_in_the_editor_keeps_no_nul_or_control_characters(runtime: Runtime, car_folder: Path) -> None:
    from carmatch.dataset.curation import save_caption

    runtime.ingestor().ingest_folder(car_folder)
    record = runtime.catalog.get(runtime.catalog.ids()[0])
    save_caption(runtime.catalog, record.id, "a red\x00 sedan\x1b[31m", {}, record.version, author="test")
    assert runtime.catalog.get(record.id).caption == "a red sedan[31m"


def test_a_pairs_file_nested_too_deep_or_not_utf8_is_one_line(tmp_path: Path) -> None:
    from carmatch.training.data import read_pairs_jsonl

    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"image_id": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(InvalidInputError, match="deep.jsonl:1: not a pair record"):
        read_pairs_jsonl(deep)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"caption": "voiture rouge é"}\n'.encode("latin-1"))
    with pytest.raises(InvalidInputError, match="Cannot read the pairs file"):
        read_pairs_jsonl(latin)


def test_a_demo_folder_whose_labels_csv_is_not_utf8_is_one_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from admin.cli import main

    folder = tmp_path / "demo"
    folder.mkdir()
    Image.new("RGB", (32, 32), "red").save(folder / "a.jpg")
    (folder / "metadata.csv").write_bytes("file_name,label\na.jpg,Citroën C4\n".encode("latin-1"))
    assert main(["demo", "--dataset", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --dataset cannot be read") and len(err.strip().splitlines()) == 1
