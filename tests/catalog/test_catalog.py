"""Catalog: schema migrations, dedupe by hash, caption history, concurrency, embeddings cache."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from carmatch.catalog import Catalog
from carmatch.catalog.schema import MIGRATIONS
from carmatch.errors import ConflictError, InvalidInputError, NotFoundError


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "c.db")
    yield cat
    cat.close()


def add(catalog: Catalog, image_id: str = "a" * 64) -> str:
    catalog.add_image(image_id, f"/photos/{image_id[:4]}.jpg", 640, 480, "JPEG", 1234)
    return image_id


def test_new_catalog_is_at_latest_schema_and_reopens(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    assert cat.schema_version == len(MIGRATIONS)
    add(cat)
    cat.close()
    again = Catalog(tmp_path / "c.db")
    assert again.count() == 1
    again.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(InvalidInputError, match="newer carmatch"):
        Catalog(path)


def test_same_hash_is_one_row(catalog: Catalog) -> None:
    assert catalog.add_image("b" * 64, "/x.jpg", 10, 10) is True
    assert catalog.add_image("b" * 64, "/copy/x.jpg", 10, 10) is False
    assert catalog.count() == 1


def test_caption_history_keeps_every_version(catalog: Catalog) -> None:
    image_id = add(catalog)
    v1 = catalog.set_caption(image_id, "red car", "imported")
    v2 = catalog.set_caption(image_id, "red hatchback", "human", attributes={"color": "Red"}, author="ann")
    assert (v1, v2) == (1, 2)
    record = catalog.get(image_id)
    assert (record.caption, record.caption_source, record.attributes) == ("red hatchback", "human", {"color": "Red"})
    assert [h.caption for h in catalog.history(image_id)] == ["red hatchback", "red car"]
    assert catalog.filter_ids({"color": "RED"}) == {image_id}


def test_stale_version_is_refused_and_changes_nothing(catalog: Catalog) -> None:
    image_id = add(catalog)
    catalog.set_caption(image_id, "first", "human")
    loaded_version = catalog.get(image_id).version
    catalog.set_caption(image_id, "someone else's edit", "human", expected_version=loaded_version)
    with pytest.raises(ConflictError, match="someone else's edit"):
        catalog.set_caption(image_id, "my edit", "human", expected_version=loaded_version)
    assert catalog.get(image_id).caption == "someone else's edit"


def test_machine_caption_does_not_overwrite_human_unless_asked(catalog: Catalog) -> None:
    image_id = add(catalog)
    catalog.set_caption(image_id, "human words", "human")
    assert catalog.set_caption(image_id, "claude words", "claude-live", overwrite_human=False) is None
    assert catalog.get(image_id).caption == "human words"
    catalog.set_caption(image_id, "claude words", "claude-live", overwrite_human=True)
    assert catalog.get(image_id).caption == "claude words"


def test_unknown_source_or_state_is_refused(catalog: Catalog) -> None:
    image_id = add(catalog)
    with pytest.raises(InvalidInputError):
        catalog.set_caption(image_id, "x", "robot")
    with pytest.raises(InvalidInputError):
        catalog.set_review_state(image_id, "maybe")


def test_deleted_images_leave_the_collection_but_keep_history(catalog: Catalog) -> None:
    image_id = add(catalog)
    catalog.set_caption(image_id, "kept", "human")
    assert catalog.delete_images([image_id]) == 1
    assert catalog.count() == 0 and catalog.ids() == []
    with pytest.raises(NotFoundError):
        catalog.get(image_id)
    assert catalog.history(image_id)[0].caption == "kept"
    assert catalog.restore_images([image_id]) == 1 and catalog.count() == 1


def test_embeddings_are_cached_per_model(catalog: Catalog) -> None:
    image_id = add(catalog)
    vec = np.arange(4, dtype=np.float32)
    catalog.put_embeddings("m1", [image_id], vec[None, :])
    assert np.array_equal(catalog.get_embeddings("m1", [image_id])[image_id], vec)
    assert catalog.get_embeddings("m2", [image_id]) == {}
    assert catalog.embedded_ids("m1") == {image_id}


def test_failed_transaction_leaves_nothing(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError):
        with catalog.transaction():
            add(catalog)
            raise RuntimeError("crash mid-write")
    assert catalog.count() == 0


def test_catalog_migration_v2_upgrades_a_v1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version=1")
    conn.close()
    with Catalog(path) as cat:
        assert cat.schema_version == len(MIGRATIONS)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"images_live_added", "images_rel_path"} <= names


def test_migration_scripts_split_on_statements_not_on_every_semicolon() -> None:
    from carmatch.catalog.schema import split_sql

    script = """
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN
        UPDATE t SET a = a || ';' WHERE rowid = new.rowid;
    END;
    """
    statements = split_sql(script)
    assert len(statements) == 2 and statements[1].startswith("CREATE TRIGGER")
    conn = sqlite3.connect(":memory:")
    for statement in statements:
        conn.execute(statement)
    conn.execute("INSERT INTO t DEFAULT VALUES")
    assert conn.execute("SELECT a FROM t").fetchone()[0] == "x;y;"
