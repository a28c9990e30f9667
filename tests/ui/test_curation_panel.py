"""The curation panel's events as the browser drives them: likely mistakes, duplicate groups, the map, access."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from carmatch.errors import AccessDeniedError, InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import curation_actions as actions

PASSWORD = "s3cret-pass"


@pytest.fixture
def curated(runtime: Runtime, car_folder: Path) -> Runtime:
    """Six drawn cars and a resized copy of one, captioned; one caption contradicts its colour attribute."""
    Image.open(car_folder / "red_sedan.jpg").resize((80, 53)).save(car_folder / "red_sedan_copy.png")
    runtime.settings = runtime.settings.with_overrides(admin_password=PASSWORD)
    runtime.ingestor().ingest_folder(car_folder)
    for record in runtime.catalog.get_many(runtime.catalog.ids()).values():
        colour = Path(record.path).stem.split("_")[0]
        said = "red" if colour == "green" else colour
        runtime.catalog.set_caption(record.id, f"a {said} car", "claude-live", {"color": colour})
    return runtime


def by_name(runtime: Runtime) -> dict[str, str]:
    return {Path(r.path).name: r.id for r in runtime.catalog.get_many(runtime.catalog.ids()).values()}


def test_visitors_see_results_but_cannot_compute_or_delete(curated: Runtime) -> None:
    assert "Not computed" in actions.cached_suspects(curated).note
    with pytest.raises(AccessDeniedError):
        actions.compute_suspects(curated, "")
    with pytest.raises(AccessDeniedError):
        actions.compute_duplicates(curated, "wrong")
    with pytest.raises(AccessDeniedError):
        actions.map_figure_for(curated, "", "color", compute=True)
    ids = list(by_name(curated).values())[:2]
    with pytest.raises(AccessDeniedError):
        actions.delete_copies(curated, "", ids, ids[1:], True)
    assert len(curated.catalog.ids()) == 7  # nothing deleted

    computed = actions.compute_suspects(curated, PASSWORD)
    seen = actions.cached_suspects(curated)  # a visitor now sees what the admin computed
    assert seen.ids == computed.ids and seen.gallery[0][1] == computed.gallery[0][1]


def test_likely_mistakes_show_the_reason_beside_each_image(curated: Runtime) -> None:
    listing = actions.compute_suspects(curated, PASSWORD, top=3)
    assert len(listing.ids) == 3 and listing.ids[0] == by_name(curated)["green_van.webp"]
    assert listing.gallery[0][1].endswith("caption says red; its colour attribute says green")
    assert "3 of 7 captions" in listing.note
    assert listing.rows[0][2] == "caption says red; its colour attribute says green"  # the readable reason
    assert listing.rows[0][3] == "a red car" and listing.rows[0][4] == "green_van.webp"


def test_duplicate_copies_are_deleted_only_when_confirmed_and_never_the_whole_group(curated: Runtime) -> None:
    groups = actions.compute_duplicates(curated, PASSWORD)
    names = by_name(curated)
    pair = {names["red_sedan.jpg"], names["red_sedan_copy.png"]}
    group = next(g for g in groups if pair <= set(g.members))
    listing = actions.group_listing(curated, groups, actions.group_choices(groups)[groups.index(group)])
    assert listing.ids == group.members and listing.gallery[0][1].startswith("keep")
    copy = names["red_sedan_copy.png"]
    assert group.keep == names["red_sedan.jpg"]  # the larger original is the suggested keeper

    with pytest.raises(InvalidInputError, match="confirm"):
        actions.delete_copies(curated, PASSWORD, listing.ids, [copy], False)
    with pytest.raises(InvalidInputError, match="Keep at least one"):
        actions.delete_copies(curated, PASSWORD, listing.ids, listing.ids, True)
    assert copy in curated.catalog.ids()

    report = actions.delete_copies(curated, PASSWORD, listing.ids, [copy], True)
    assert "1" in report and copy not in curated.catalog.ids()
    assert all(copy not in g.members for g in actions.cached_groups(curated))


def test_the_map_colours_points_and_a_selection_lists_those_images(curated: Runtime) -> None:
    with pytest.raises(InvalidInputError, match="Not computed"):
        actions.map_figure_for(curated, "", "color")
    figure = actions.map_figure_for(curated, PASSWORD, "review_state", compute=True)
    points = [d[0] for trace in figure.data for d in trace.customdata]
    assert sorted(points) == sorted(curated.catalog.ids())
    assert [t.name for t in figure.data] == ["unreviewed (7)"]
    assert len(actions.map_figure_for(curated, "", "color").data) == 6  # six colours; cached: visitors may draw it

    chosen = points[:2]
    listing = actions.selection_listing(curated, " ".join(chosen))
    assert sorted(listing.ids) == sorted(chosen) and "2 point(s) selected" in listing.note
    assert actions.selection_listing(curated, "").ids == []


def test_the_panel_computes_in_the_background_and_shows_the_result_when_done(curated: Runtime) -> None:
    with pytest.raises(AccessDeniedError):
        actions.start_job(curated, "", "suspects")
    assert actions.job_line(curated, "suspects") == ("", False)
    assert "Started in the background" in actions.start_job(curated, PASSWORD, "suspects")
    actions.jobs_of(curated).wait("suspects", 60)
    line, running = actions.job_line(curated, "suspects")
    assert not running and line.startswith("Finished")
    assert actions.cached_suspects(curated).ids[0] == by_name(curated)["green_van.webp"]
