"""Local car data sets that ``datasets.load_dataset`` reads, drawn for the demo-collection tests."""

from __future__ import annotations

from pathlib import Path

from tests.drawing import save_car

CLASSES = (
    ("2012 Tesla Model S Sedan", "red", "sedan"),
    ("Chevrolet Silverado 1500 Extended Cab 2012", "blue", "pickup"),
    ("AM General Hummer SUV 2000", "green", "van"),
)


def image_folder(root: Path, per_class: int = 3, split: str = "train") -> Path:
    """An image folder data set: ``root/SPLIT/<class name>/NNNN.jpg``, ``per_class`` distinct cars each."""
    for c, (name, color, body) in enumerate(CLASSES):
        for j in range(per_class):
            save_car(root / split / name / f"{j:04d}.jpg", color, body, seed=100 * c + j + 1)
    return root


def parquet_folder(root: Path, columns: dict[str, object] | None = None, per_class: int = 2) -> Path:
    """A parquet data set ``root/train-00000-of-00001.parquet``: an image column and a class-label column by default."""
    import datasets

    drawn = image_folder(root.parent / f"{root.name}-drawn", per_class)
    files = sorted(drawn.rglob("*.jpg"))
    names = [name for name, _, _ in CLASSES]
    data: dict[str, object] = columns or {
        "picture": [{"bytes": f.read_bytes(), "path": None} for f in files],
        "car": [names.index(f.parent.name) for f in files],
    }
    features = {
        "picture": datasets.Image(),
        "car": datasets.ClassLabel(names=names),
        "label": datasets.Value("int64"),
        "text": datasets.Value("string"),
    }
    table = datasets.Dataset.from_dict(data, features=datasets.Features({k: features[k] for k in data}))
    root.mkdir(parents=True, exist_ok=True)
    table.to_parquet(str(root / "train-00000-of-00001.parquet"))
    return root
