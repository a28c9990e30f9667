"""The Dataset tab's curation panel: likely mistakes, near-duplicate groups, the map. Layout and wiring only.

The logic is in :mod:`carmatch.ui.curation_actions`. Opening the accordion shows the results
computed last for the active model (to everyone); the compute buttons (admin) start a background
job whose progress a timer shows every 2 s, and whose result replaces the view when it is done.
A tile clicked in any of the three views opens that image in the tab's editor. The map
is a Plotly figure in a ``gr.Plot``; a small script passes its box/lasso selection to the panel
(through a hidden textbox and the "Show selected points" button) and shows a point's thumbnail on
hover.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from carmatch.dataset.collection_map import COLOUR_BY
from carmatch.runtime import Runtime
from carmatch.ui import curation_actions as actions
from carmatch.ui.common import user_errors
from carmatch.ui.dataset_actions import open_image

INTRO = (
    "Point the review at what matters. **Likely mistakes** ranks every caption by how much the image and "
    "its caption disagree under the active model, and by contradictions between a caption and its "
    "attributes. **Near-duplicates** groups copies of one photo (each group stays on one side of the "
    "train/validation/test split). **Map** draws the whole collection in 2-D. Results are kept per model "
    "and caption version; computing them needs editing unlocked."
)
MAP_JS = """
() => {
  if (window.carmatchMapHooks) return;
  window.carmatchMapHooks = true;
  const tip = document.createElement('img');
  tip.id = 'curation-map-thumb';
  tip.style.cssText = 'position:fixed;display:none;width:128px;z-index:1000;pointer-events:none;'
    + 'border:2px solid #fff;box-shadow:0 2px 8px rgba(0,0,0,.4);border-radius:4px;';
  document.body.appendChild(tip);
  const hook = () => {
    const plot = document.querySelector('#curation-map .js-plotly-plot');
    if (!plot || plot.carmatchHooked || typeof plot.on !== 'function') return;
    plot.carmatchHooked = true;
    plot.on('plotly_selected', (ev) => {
      const ids = ((ev && ev.points) || []).map((p) => Array.isArray(p.customdata) ? p.customdata[0] : p.customdata);
      const box = document.querySelector('#curation-map-selection textarea, #curation-map-selection input');
      if (!box) return;
      box.value = ids.join(' ');
      box.dispatchEvent(new Event('input', {bubbles: true}));
      setTimeout(() => document.querySelector('#curation-map-show')?.click(), 100);
    });
    plot.on('plotly_hover', (ev) => {
      const point = ev.points && ev.points[0];
      const url = point && Array.isArray(point.customdata) ? point.customdata[1] : '';
      if (!url) return;
      tip.src = url;
      tip.style.left = (ev.event.clientX + 16) + 'px';
      tip.style.top = (ev.event.clientY + 16) + 'px';
      tip.style.display = 'block';
    });
    plot.on('plotly_unhover', () => { tip.style.display = 'none'; });
  };
  new MutationObserver(hook).observe(document.body, {childList: true, subtree: true});
}
"""


def _gallery(elem_id: str, columns: int) -> gr.Gallery:
    return gr.Gallery(
        columns=columns, height=460, allow_preview=False, interactive=False, show_label=False, elem_id=elem_id
    )


def _opens_editor(
    runtime: Runtime, gallery: gr.Gallery, ids: gr.State, editor_outputs: list[Any], values: Callable
) -> None:
    """A click on a tile of ``gallery`` opens that image in the tab's editor."""

    def on_select(shown: Sequence[str], evt: gr.SelectData) -> tuple[Any, ...]:
        index = evt.index if isinstance(evt.index, int) else -1
        return values(open_image(runtime, shown[index] if 0 <= index < len(shown) else None))

    gallery.select(on_select, [ids], editor_outputs, api_visibility="private")


def build(runtime: Runtime, session_password: gr.State, editor_outputs: list[Any], editor_values: Callable) -> Any:
    """Lay out the panel (an accordion) in the current context and wire it; returns the delete event."""
    with gr.Accordion("Curation: likely mistakes, near-duplicates, map", open=False, elem_id="curation") as panel:
        with gr.Row(equal_height=True):
            gr.Markdown(INTRO)
            stop = gr.Button("Stop running jobs", size="sm", scale=0, elem_id="curation-stop")
        stopped = gr.Markdown(elem_id="curation-stopped")
        stop.click(
            user_errors(lambda pw: actions.stop_jobs(runtime, pw)),
            [session_password],
            [stopped],
            api_visibility="private",
        )
        with gr.Tab("Review likely mistakes", elem_id="curation-suspects-tab"):
            suspects = _suspects_view(runtime, session_password)
        with gr.Tab("Near-duplicates", elem_id="curation-duplicates-tab"):
            duplicates = _duplicates_view(runtime, session_password)
        with gr.Tab("Map", elem_id="curation-map-tab"):
            mapped = _map_view(runtime, session_password)
    for view in (suspects, duplicates, mapped):
        _opens_editor(runtime, view["gallery"], view["ids"], editor_outputs, editor_values)

    @user_errors
    def on_open(top: float) -> tuple[Any, ...]:
        listing = actions.cached_suspects(runtime, int(top))
        groups = actions.cached_groups(runtime)
        return (*_listing(listing), listing.rows, *_groups_view(runtime, groups, None))

    outputs = [*suspects["outputs"], *duplicates["outputs"]]
    panel.expand(on_open, [suspects["top"]], outputs, api_visibility="private")
    panel.expand(None, None, None, js=MAP_JS)
    return duplicates["deleted"]


def _background(
    runtime: Runtime,
    session_password: gr.State,
    kind: str,
    button: gr.Button,
    line: gr.Markdown,
    outputs: list[Any],
    show: Callable[..., Any],
    show_inputs: list[Any],
) -> None:
    """``button`` starts the ``kind`` job in the background; a timer shows its progress, then ``show``s the result."""
    timer = gr.Timer(2.0, active=False)

    @user_errors
    def on_start(pw: str) -> tuple[Any, ...]:
        return actions.start_job(runtime, pw, kind), gr.Timer(active=True)

    def on_tick(*values: Any) -> tuple[Any, ...]:
        text, running = actions.job_line(runtime, kind)
        if running:
            return (text, gr.Timer(active=True), *[gr.update() for _ in outputs])
        shown = show(*values)
        return (text, gr.Timer(active=False), *(shown if isinstance(shown, tuple) else (shown,)))

    button.click(on_start, [session_password], [line, timer], api_visibility="private")
    timer.tick(user_errors(on_tick), show_inputs, [line, timer, *outputs], api_visibility="private")


def _listing(listing: actions.Listing) -> tuple[Any, ...]:
    return listing.note, listing.gallery, listing.ids


def _suspects_view(runtime: Runtime, session_password: gr.State) -> dict[str, Any]:
    with gr.Row(equal_height=True):
        run = gr.Button("Find likely mistakes", variant="primary", elem_id="curation-suspects-run")
        top = gr.Slider(12, 240, value=actions.SHOWN_SUSPECTS, step=12, label="How many to show")
    status = gr.Markdown(elem_id="curation-suspects-status")
    note = gr.Markdown(elem_id="curation-suspects-note")
    gallery = _gallery("curation-suspects", 6)
    table = gr.Dataframe(
        headers=actions.SUSPECT_HEADERS, label="Why each one", interactive=False, wrap=True, elem_id="curation-why"
    )
    ids = gr.State([])
    outputs = [note, gallery, ids, table]

    @user_errors
    def on_top(shown: float) -> tuple[Any, ...]:
        listing = actions.cached_suspects(runtime, int(shown))
        return (*_listing(listing), listing.rows)

    _background(runtime, session_password, "suspects", run, status, outputs, on_top, [top])
    top.release(on_top, [top], outputs, api_visibility="private")
    return {"gallery": gallery, "ids": ids, "top": top, "outputs": outputs}


def _groups_view(runtime: Runtime, groups: Sequence[Any], choice: str | None) -> tuple[Any, ...]:
    """Values of the duplicates view: dropdown, note, gallery, ids, the copies to tick."""
    listing = actions.group_listing(runtime, groups, choice)
    names = actions.group_choices(groups)
    copies = [(f"{i[:12]}" + (" (suggested keeper)" if n == 0 else ""), i) for n, i in enumerate(listing.ids)]
    return (
        gr.update(choices=names, value=choice if choice in names else (names[0] if names else None)),
        *_listing(listing),
        gr.update(choices=copies, value=[value for _, value in copies[1:]]),
    )


def _duplicates_view(runtime: Runtime, session_password: gr.State) -> dict[str, Any]:
    with gr.Row(equal_height=True):
        run = gr.Button("Find near-duplicates", variant="primary", elem_id="curation-duplicates-run")
        choice = gr.Dropdown(label="Group", choices=[], elem_id="curation-duplicates-group")
    status = gr.Markdown(elem_id="curation-duplicates-status")
    note = gr.Markdown(elem_id="curation-duplicates-note")
    gallery = _gallery("curation-duplicates", 4)
    ids = gr.State([])
    with gr.Row(equal_height=True):
        copies = gr.CheckboxGroup(label="Delete these copies", choices=[], elem_id="curation-duplicates-copies")
        confirm = gr.Checkbox(label="confirm", elem_id="curation-duplicates-confirm")
        delete = gr.Button("Delete ticked copies", variant="stop", elem_id="curation-duplicates-delete")
    report = gr.Markdown(elem_id="curation-duplicates-report")
    outputs = [choice, note, gallery, ids, copies]

    @user_errors
    def on_choose(name: str) -> tuple[Any, ...]:
        return _groups_view(runtime, actions.cached_groups(runtime), name)

    @user_errors
    def on_delete(pw: str, shown: list[str], ticked: list[str], sure: bool, name: str) -> tuple[Any, ...]:
        done = actions.delete_copies(runtime, pw, shown, ticked or [], sure)
        return (done, False, *_groups_view(runtime, actions.cached_groups(runtime), name))

    _background(runtime, session_password, "duplicates", run, status, outputs, lambda: on_choose(""), [])
    choice.input(on_choose, [choice], outputs, api_visibility="private")
    deleted = delete.click(
        on_delete,
        [session_password, ids, copies, confirm, choice],
        [report, confirm, *outputs],
        api_visibility="private",
    )
    return {"gallery": gallery, "ids": ids, "outputs": outputs, "deleted": deleted}


def _map_view(runtime: Runtime, session_password: gr.State) -> dict[str, Any]:
    with gr.Row(equal_height=True):
        colour_by = gr.Dropdown(label="Colour by", choices=list(COLOUR_BY), value="color", elem_id="curation-map-by")
        show_map = gr.Button("Draw map", elem_id="curation-map-draw")
        compute = gr.Button("Compute map", variant="primary", elem_id="curation-map-compute")
    status = gr.Markdown(elem_id="curation-map-status")
    plot = gr.Plot(show_label=False, elem_id="curation-map")
    selection = gr.Textbox(visible="hidden", elem_id="curation-map-selection")
    show_selected = gr.Button("Show selected points", size="sm", elem_id="curation-map-show")
    note = gr.Markdown("Select points on the map (box or lasso) to see those images here.")
    gallery = _gallery("curation-map-selected", 8)
    ids = gr.State([])

    @user_errors
    def on_draw(pw: str, by: str) -> Any:
        return actions.map_figure_for(runtime, pw, by)

    @user_errors
    def on_selected(chosen: str) -> tuple[Any, ...]:
        return _listing(actions.selection_listing(runtime, chosen or ""))

    show_map.click(on_draw, [session_password, colour_by], [plot], api_visibility="private")
    colour_by.input(on_draw, [session_password, colour_by], [plot], api_visibility="private")
    _background(runtime, session_password, "map", compute, status, [plot], on_draw, [session_password, colour_by])
    show_selected.click(on_selected, [selection], [note, gallery, ids], api_visibility="private")
    return {"gallery": gallery, "ids": ids}
