"""The collection map as a Plotly figure: one WebGL scatter trace per colour value (or a colour scale).

Plain Plotly, no Gradio: the curation panel shows it in a ``gr.Plot``; ``bench/curation_bench.py``
times it. Each point carries ``[image id, thumbnail URL]`` in ``customdata``: a box or lasso selection
shows those images below the map, and hovering a point shows its thumbnail beside the caption
(the panel's script; the URL is empty when the thumbnail was not made yet).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

MAX_LEGEND_VALUES = 12  # rarer values are drawn together as "other"
SWATCHES = {  # a colour value is drawn in its own colour (other values take Plotly's palette)
    "red": "#d62728",
    "blue": "#1f5fd6",
    "green": "#2ca02c",
    "yellow": "#e6c300",
    "orange": "#ff7f0e",
    "black": "#222222",
    "white": "#f4f4f4",
    "silver": "#b0b0b0",
    "grey": "#808080",
    "gray": "#808080",
    "brown": "#8c564b",
    "purple": "#9467bd",
    "pink": "#e377c2",
    "unknown": "#c7c7c7",
    "other": "#9a9a9a",
}
HOVER = "%{text}<extra></extra>"


def _grouped(labels: Sequence[str]) -> list[str]:
    """Labels with all but the commonest ``MAX_LEGEND_VALUES`` values folded into ``other``."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    common = set(sorted(counts, key=lambda v: (-counts[v], v))[:MAX_LEGEND_VALUES])
    return [label if label in common else "other" for label in labels]


def map_figure(
    xy: np.ndarray,
    ids: Sequence[str],
    labels: Sequence[str] | Sequence[float],
    hover: Sequence[str],
    colour_by: str,
    total: int,
    thumbs: Sequence[str] | None = None,
) -> go.Figure:
    """A scatter of the drawn points coloured by ``labels`` (text values, or numbers on a colour scale)."""
    figure = go.Figure()
    data = [[i, t] for i, t in zip(ids, thumbs or [""] * len(ids))]
    numeric = bool(labels) and all(isinstance(v, float) for v in labels)
    if numeric:
        figure.add_trace(
            go.Scattergl(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                marker={
                    "size": 5,
                    "color": list(labels),
                    "colorscale": "Reds",
                    "showscale": True,
                    "cmin": 0,
                    "cmax": 1,
                },
                customdata=data,
                text=list(hover),
                hovertemplate=HOVER,
                name=colour_by,
            )
        )
    else:
        folded = _grouped([str(v) for v in labels])
        for value in sorted(set(folded), key=lambda v: (v in ("other", "unknown"), v)):
            rows = [i for i, v in enumerate(folded) if v == value]
            figure.add_trace(
                go.Scattergl(
                    x=xy[rows, 0],
                    y=xy[rows, 1],
                    mode="markers",
                    marker=_marker(value, colour_by),
                    customdata=[data[i] for i in rows],
                    text=[hover[i] for i in rows],
                    hovertemplate=HOVER,
                    name=f"{value} ({len(rows)})",
                )
            )
    _lay_out(figure, len(ids), total, colour_by)
    return figure


def _lay_out(figure: go.Figure, shown: int, total: int, colour_by: str) -> None:
    """Title (how many points are drawn), lasso by default, no axis ticks (the axes have no units)."""
    title = f"{shown:,} images" if shown == total else f"{shown:,} of {total:,} images drawn (a random sample)"
    figure.update_layout(
        title={"text": f"{title}, coloured by {colour_by.replace('_', ' ')}", "font": {"size": 14}},
        dragmode="lasso",
        height=520,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"itemsizing": "constant"},
        xaxis={"showticklabels": False, "title": None},
        yaxis={"showticklabels": False, "title": None},
    )


def _marker(value: str, colour_by: str) -> dict[str, object]:
    """A point's marker: a colour value in its own colour (outlined, so white shows), else the palette's."""
    swatch = SWATCHES.get(value) if colour_by == "color" or value in ("unknown", "other") else None
    if swatch is None:
        return {"size": 5}
    return {"size": 6, "color": swatch, "line": {"width": 0.5, "color": "#555555"}}
