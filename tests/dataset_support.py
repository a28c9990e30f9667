"""Helpers for the dataset tests: drawn cars put straight into a catalog with a caption and review state."""

from __future__ import annotations

from pathlib import Path

from carmatch.catalog import Catalog
from carmatch.images import load_image
from tests.drawing import draw_car


def add(catalog: Catalog, path: Path, caption: str | None, state: str = "approved", **attrs: str) -> str:
    """Put an image file into the catalog (no embedding needed for exports) with a caption and state."""
    loaded = load_image(path, max_pixels=100_000_000)
    catalog.add_image(loaded.sha256, str(path.resolve()), loaded.width, loaded.height, loaded.format, loaded.size_bytes)
    if caption is not None:
        catalog.set_caption(loaded.sha256, caption, "claude-live", attrs or None)
        if state != "unreviewed":
            catalog.set_review_state(loaded.sha256, state)
    return loaded.sha256


def car(path: Path, seed: int, size: tuple[int, int] = (192, 144), fmt: str | None = None) -> Path:
    """Draw a red sedan (big enough for Titan by default) into ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_car("red", "sedan", size=size, seed=seed).save(path, format=fmt)
    return path


def add_cars(catalog: Catalog, folder: Path, count: int, state: str = "approved", first_seed: int = 0) -> list[str]:
    """``count`` distinct Titan-sized cars, each with its own caption; returns their ids."""
    return [
        add(
            catalog,
            car(folder / f"car{first_seed + i}.png", first_seed + i),
            f"a red sedan number {first_seed + i}",
            state,
        )
        for i in range(count)
    ]
