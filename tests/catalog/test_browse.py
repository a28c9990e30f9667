"""Catalog reads for browsing, importing and captioning: pages, the next match, id prefixes, caption states."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carmatch.catalog import Catalog
from carmatch.catalog.browse import BrowseQuery
from carmatch.errors import InvalidInputError


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    """Four images: ab.. and ac.. (two folders, same relative path), b1.. captioned by a person, c2.. deleted."""
    cat = Catalog(tmp_path / "c.db")
    cat.add_image("ab" + "0" * 62, "/one/cars/x.jpg", 64, 48, root="/one", rel_path="cars/x.jpg")
    cat.add_image("ac" + "0" * 62, "/two/cars/x.jpg", 64, 48, root="/two", rel_path="cars/x.jpg")
    cat.add_image("b1" + "0" * 62, "/one/y.jpg", 64, 48, root="/one", rel_path="y.jpg")
    cat.add_image("c2" + "0" * 62, "/one/z.jpg", 64, 48, root="/one", rel_path="z.jpg")
    cat.set_caption("b1" + "0" * 62, "a red car", "human")
    cat.set_caption("ab" + "0" * 62, "a blue van", "claude-batch", prompt_version="v1")
    cat.delete_images(["c2" + "0" * 62])
    yield cat
    cat.close()


def test_id_prefix_and_relative_path_find_live_images_only(catalog: Catalog) -> None:
    assert [r.id[:2] for r in catalog.images_with_id_prefix("A")] == ["ab", "ac"]
    assert [r.id[:2] for r in catalog.images_with_id_prefix("ab")] == ["ab"]
    assert catalog.images_with_id_prefix("c2") == []  # deleted
    assert {r.path for r in catalog.images_with_rel_path("cars/x.jpg")} == {"/one/cars/x.jpg", "/two/cars/x.jpg"}
    assert catalog.images_with_rel_path("z.jpg") == []


def test_caption_states_list_live_images_in_catalog_order(catalog: Catalog) -> None:
    states = catalog.caption_states()
    assert [s.image_id[:2] for s in states] == ["ab", "ac", "b1"]
    assert [(s.has_caption, s.source, s.prompt_version) for s in states] == [
        (True, "claude-batch", "v1"),
        (False, None, None),
        (True, "human", None),
    ]


def test_pages_count_and_order_the_matching_live_images(catalog: Catalog) -> None:
    by_name = BrowseQuery(sort="file name")
    assert catalog.count_matching(by_name) == 3
    assert [r.path for r in catalog.page_records(by_name, limit=2, offset=1)] == ["/one/y.jpg", "/two/cars/x.jpg"]
    assert catalog.matching_ids(BrowseQuery(text="car", sort="file name")) == ["b1" + "0" * 62]
    assert catalog.matching_ids(BrowseQuery(source="none")) == ["ac" + "0" * 62]


def test_next_match_follows_the_order_and_wraps(catalog: Catalog) -> None:
    query = BrowseQuery(sort="file name")
    first = catalog.next_matching(query)
    assert first == "ab" + "0" * 62
    second = catalog.next_matching(query, first)
    third = catalog.next_matching(query, second)
    assert (second, third) == ("b1" + "0" * 62, "ac" + "0" * 62)
    assert catalog.next_matching(query, third) == first  # wraps round
    assert catalog.next_matching(BrowseQuery(state="approved")) is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (BrowseQuery(sort="random"), "Unknown sort"),
        (BrowseQuery(attributes={"wheels": "4"}), "Unknown attribute"),
        (BrowseQuery(source="camera"), "Unknown caption source"),
        (BrowseQuery(state="maybe"), "Unknown review state"),
    ],
)
def test_unknown_filters_and_sorts_are_refused(catalog: Catalog, query: BrowseQuery, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        catalog.count_matching(query)
    with pytest.raises(InvalidInputError, match=message):
        catalog.page_records(query, 10, 0)
