"""The hnswlib index on disk: small saves append a segment, big ones compact, old folders load, one copy in memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import hnswlib
import numpy as np
import pytest

from carmatch.stores import index_files
from carmatch.stores.cells import Cells
from carmatch.stores.hnsw_store import IndexStore
from carmatch.stores.index import CURRENT_FILE
from carmatch.stores.rows import VectorRows
from tests.stores.test_index import clustered, make_index


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    """name -> (inode, mtime in ns) of every file in a folder."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def saved_graph_index(tmp_path: Path, n: int = 800, ann: str = "hnsw") -> tuple[IndexStore, np.ndarray]:
    """A store holding one generation of ``n`` vectors searched through the graph (or the cells)."""
    store = IndexStore(tmp_path / "idx", exact_max=100, ann=ann)
    index, vectors = make_index(n, exact_max=100, ann=ann)
    store.save(index)
    return store, vectors


def test_adding_one_image_appends_a_segment_and_rewrites_nothing(tmp_path: Path) -> None:
    store, vectors = saved_graph_index(tmp_path)
    gen = store.folder / store.current_generation()
    before = files_of(gen)
    index = store.load("tiny@abc")
    index.add(["new"], clustered(1, seed=11))
    pointer = store.save(index)
    assert pointer == f"{gen.name}/1" and store.current_generation() == pointer
    after = files_of(gen)
    assert {name: after[name] for name in before} == before  # vectors.npy, hnsw.bin, ids.json untouched
    assert sorted(set(after) - set(before)) == ["seg-00001.json", "seg-00001.npy"]
    assert not index.graph_built  # appending never needed the graph in memory
    loaded = store.load("tiny@abc")
    assert len(loaded) == 801 and store.read_manifest().count == 801
    assert loaded.search(clustered(1, seed=11)[0], 1)[0][0] == "new"
    assert [i for i, _ in loaded.search(vectors[7], 5)] == [i for i, _ in index.search(vectors[7], 5)]


def test_removals_and_replaced_vectors_survive_a_reload(tmp_path: Path) -> None:
    for exact_max in (100, 10_000):  # through the graph and exactly
        store = IndexStore(tmp_path / f"idx{exact_max}", exact_max=exact_max)
        index, vectors = make_index(500, exact_max=exact_max)
        store.save(index)
        index.remove(["img3"])
        index.add(["img4"], vectors[9:10])  # img4 now has img9's vector
        store.save(index)
        loaded = store.load()
        assert "img3" not in loaded and len(loaded) == 499
        np.testing.assert_allclose(loaded.vector("img4"), vectors[9], atol=1e-6)
        assert {i for i, _ in loaded.search(vectors[9], 2)} == {"img4", "img9"}
        assert "img3" not in {i for i, _ in loaded.search(vectors[3], 20)}


def test_segments_are_compacted_into_a_new_generation_once_they_add_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_files, "COMPACT_MIN_ROWS", 3)
    store, _ = saved_graph_index(tmp_path, 300)
    first = store.current_generation()
    extra = clustered(10, seed=5)
    for n in range(3):  # one row each: 3 segments fit the budget
        index = store.load()
        index.add([f"extra{n}"], extra[n : n + 1])
        store.save(index)
    assert store.current_generation() == f"{first}/3"
    index = store.load()
    index.remove(["img0"])
    compacted = store.save(index)  # the 4th changed row: a whole new generation
    assert "/" not in compacted and compacted != first
    assert not (store.folder / first).exists()
    assert not [p for p in (store.folder / compacted).iterdir() if p.name.startswith("seg-")]
    loaded = store.load()
    assert len(loaded) == 302 and "img0" not in loaded and "extra2" in loaded
    assert store.read_manifest().count == 302


def test_a_crash_while_appending_leaves_the_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = saved_graph_index(tmp_path, 300)
    pointer = store.current_generation()
    index = store.load()
    index.add(["new"], clustered(1, seed=4))
    real_replace = os.replace

    def crash(src: str, dst: str) -> None:
        if str(dst).endswith(CURRENT_FILE):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.save(index)
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.current_generation() == pointer and len(store.load()) == 300
    again = store.load()  # the next writer overwrites the unnamed segment the crash left
    again.add(["other"], clustered(1, seed=6))
    store.save(again)
    loaded = store.load()
    assert len(loaded) == 301 and "other" in loaded and "new" not in loaded


def test_a_format_1_generation_loads_and_takes_appends(tmp_path: Path) -> None:
    vectors = clustered(300)
    ids = [f"old{i}" for i in range(300)]
    gen = tmp_path / "idx" / "gen-20250101T000000+0000-0ld0ld00"
    gen.mkdir(parents=True)
    manifest = {"model_key": "tiny@abc", "model": "tiny", "pretrained": "ckpt.pt", "weights_hash": "abc", "dim": 32}
    (gen / "manifest.json").write_text(json.dumps({**manifest, "count": 300, "format_version": 1}))
    (gen / "ids.json").write_text(json.dumps(ids))
    np.save(gen / "vectors.npy", vectors)
    graph = hnswlib.Index(space="cosine", dim=32)
    graph.init_index(max_elements=300, ef_construction=200, M=16)
    graph.add_items(vectors, np.arange(300))
    graph.save_index(str(gen / "hnsw.bin"))
    (tmp_path / "idx" / CURRENT_FILE).write_text(gen.name)
    store = IndexStore(tmp_path / "idx", exact_max=100)
    index = store.load("tiny@abc")
    assert len(index) == 300 and index.search(vectors[42], 1)[0][0] == "old42"
    index.add(["new"], clustered(1, seed=8))
    store.save(index)
    loaded = store.load("tiny@abc")
    assert len(loaded) == 301 and loaded.search(vectors[17], 1)[0][0] == "old17"


def test_a_loaded_index_keeps_its_vectors_once_memory_mapped(tmp_path: Path) -> None:
    store, vectors = saved_graph_index(tmp_path, 400)
    index = store.load()
    assert isinstance(index.rows.base, np.memmap) and len(index.rows.tail) == 0  # nothing read into memory
    assert index.search(vectors[5], 1)[0][0] == "img5" and index.graph_built
    np.testing.assert_allclose(index.vector("img8"), vectors[8], atol=1e-6)  # find-similar reads one row
    assert len(index.rows.tail) == 0
    small = IndexStore(tmp_path / "small", exact_max=10_000)  # exact search: the mapped matrix, no graph
    exact, _ = make_index(50, exact_max=10_000)
    small.save(exact)
    assert isinstance(exact.rows.base, np.memmap) and len(exact.rows.tail) == 0  # the saved index, too
    assert not small.load().graph_built


def test_rows_read_alike_across_the_mapped_file_and_the_rows_added_since(tmp_path: Path) -> None:
    vectors = clustered(20)
    np.save(tmp_path / "v.npy", vectors[:12])
    rows = VectorRows.mapped(tmp_path / "v.npy", 32)
    rows.append(vectors[12:])
    rows.release()  # pages handed back are read from the file again
    np.testing.assert_array_equal(rows[5:17], vectors[5:17])
    np.testing.assert_array_equal(rows[np.array([19, 0, 12, 11])], vectors[[19, 0, 12, 11]])
    np.testing.assert_allclose(rows.scores(vectors[3]), vectors @ vectors[3], rtol=1e-6)
    assert [start for start, _ in rows.blocks(8)] == [0, 8, 16]


def test_compaction_drops_many_dead_labels_and_keeps_a_few_marked_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_files, "COMPACT_MIN_ROWS", 3)
    for removed, nulls in ((10, 10), (60, 0)):  # 3 % dead: kept in the graph; 20 %: renumbered, graph rebuilt
        store, vectors = saved_graph_index(tmp_path / str(removed), 300)
        index = store.load()
        index.remove([f"img{i}" for i in range(removed)])
        gen = store.save(index)
        assert "/" not in gen  # more changes than a segment takes: a new generation
        assert json.loads((store.folder / gen / "ids.json").read_text()).count(None) == nulls
        loaded = store.load()
        assert len(loaded) == 300 - removed
        got = {i for i, _ in loaded.search(vectors[0], 30)}
        assert len(got) == 30 and not got & {f"img{i}" for i in range(removed)}


def test_saved_cells_are_reused_and_follow_appends_and_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_files, "COMPACT_MIN_ROWS", 3)
    store, vectors = saved_graph_index(tmp_path, 600, ann="cells")
    gen = store.folder / store.current_generation()
    assert (gen / "cells.npy").exists() and store.read_manifest().probes > 0
    monkeypatch.setattr(Cells, "build", lambda *a: pytest.fail("the saved cells were learnt again"))
    index = store.load()
    extra = clustered(2, seed=11)
    index.add(["new0", "new1"], extra)
    assert "/" in store.save(index)  # a segment: the cells file is not rewritten
    loaded = store.load()
    assert loaded.search(extra[1], 1)[0][0] == "new1" and loaded.search(vectors[7], 1)[0][0] == "img7"
    loaded.remove([f"img{i}" for i in range(100)])  # many dead: the next generation renumbers the labels
    store.save(loaded)
    again = store.load()
    for q in vectors[100:130]:
        assert [i for i, _ in again.search(q, 10)] == [i for i, _ in again.search_exact(q, 10)]
