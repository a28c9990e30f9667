"""Training loads fast: JPEGs decoded near the model's size, no re-hashing, one tokenization, batches made ahead."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from carmatch.errors import ImageError
from carmatch.training.data import AugmentConfig, Pair, PairDataset, TrainTransform
from carmatch.training.loading import BatchLoader, draft_side, read_training_image
from carmatch.training.views import CaptionViews
from tests.drawing import draw_car, png_claiming, save_car

LIMITS = {"max_pixels": 64_000_000, "max_bytes": 50 * 1024 * 1024}


def photo(path: Path, size: tuple[int, int] = (1280, 960)) -> Path:
    """A drawn car saved as a JPEG photo of ``size``."""
    draw_car("red", "sedan", size=size, seed=1).save(path, quality=90)
    return path


def test_a_jpeg_is_decoded_at_the_smallest_scale_that_still_covers_every_crop(tmp_path: Path) -> None:
    jpeg = photo(tmp_path / "car.jpg")
    side = draft_side(32, crop_scale_min=0.8, crop_ratio_max=4 / 3)
    assert side == 42  # a crop of 80 % of the area at 4:3 keeps ~77 % of the short side: 32 / 0.77
    assert read_training_image(jpeg, side, **LIMITS).size == (160, 120)  # 1/8 scale: 120 >= 42
    assert read_training_image(jpeg, 200, **LIMITS).size == (320, 240)  # 1/4 scale: 1/8 would go under 200
    assert read_training_image(jpeg, None, **LIMITS).size == (1280, 960)
    png = tmp_path / "car.png"
    draw_car("red", "sedan", size=(1280, 960), seed=1).save(png)
    assert read_training_image(png, side, **LIMITS).size == (1280, 960)  # only JPEG can decode smaller


def test_a_small_decode_gives_the_model_the_same_picture_at_its_size(tmp_path: Path) -> None:
    from open_clip.transform import image_transform

    preprocess = image_transform(32, is_train=False)
    pairs = [Pair(f"{i:064x}", str(photo(tmp_path / f"{i}.jpg")), f"car {i}") for i in range(2)]
    train = TrainTransform(preprocess, AugmentConfig())
    full = PairDataset(pairs, preprocess, lambda texts: list(texts), train)
    drafted = PairDataset(pairs, preprocess, lambda texts: list(texts), train, image_side=32)
    for key in [(0, 0), (1, 3), (0, -1)]:
        assert drafted[key][0].shape == full[key][0].shape == (3, 32, 32)
    difference = (drafted[(1, -1)][0] - full[(1, -1)][0]).abs().mean()
    assert float(difference) < 0.05, difference  # normalised pixels: the same picture


def test_training_refuses_what_ingest_refuses(tmp_path: Path) -> None:
    empty, text, huge, big = (tmp_path / name for name in ("empty.jpg", "text.jpg", "huge.png", "big.jpg"))
    empty.write_bytes(b"")
    text.write_bytes(b"not an image at all")
    huge.write_bytes(png_claiming(9_000, 8_000))  # 72 megapixels: over the 64 allowed
    photo(big)
    cases = [
        (empty, LIMITS, "empty file"),
        (text, LIMITS, "not an image"),
        (huge, LIMITS, "too large"),
        (big, {**LIMITS, "max_bytes": 100}, "MB limit"),
        (big, {**LIMITS, "max_pixels": 1000}, "too large"),
        (tmp_path / "gone.jpg", LIMITS, "cannot read"),
    ]
    for path, limits, message in cases:
        with pytest.raises(ImageError, match=message):
            read_training_image(path, 32, **limits)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photo(tmp_path / "whole.jpg").read_bytes()[:2000])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        read_training_image(truncated, None, **LIMITS)


def test_training_items_neither_hash_nor_revalidate_the_catalogued_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import carmatch.images

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("training re-read a catalogued image through the ingest path")

    monkeypatch.setattr(carmatch.images, "sha256_bytes", refuse)
    monkeypatch.setattr(carmatch.images, "decode_image", refuse)
    pairs = [Pair("a" * 64, str(save_car(tmp_path / "car.png", seed=1)), "a red sedan")]
    dataset = PairDataset(pairs, lambda image: image.size, lambda texts: list(texts), None)
    assert dataset[(0, 0)] == ((96, 64), "a red sedan")


class CountingTokenizer:
    """A tokenizer that remembers every text it was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.asked.extend(texts)
        return torch.tensor([[len(text)] for text in texts])


def test_captions_and_attribute_descriptions_are_tokenized_once_per_run(tmp_path: Path) -> None:
    image = str(save_car(tmp_path / "car.png", seed=1))
    attributes = [(("body_type", "sedan"), ("color", "red")), (("body_type", "van"), ("color", "blue")), ()]
    captions = ["a red sedan by a wall", "a blue van on a road", "a car"]
    pairs = [
        Pair(f"{i:064x}", image, caption, attributes=a) for i, (caption, a) in enumerate(zip(captions, attributes))
    ]
    views = CaptionViews(captions, attributes, "full:1,attributes:3", seed=0)
    tokenizer = CountingTokenizer()
    dataset = PairDataset(pairs, lambda image: 0, tokenizer, None, views=views)
    for _ in range(2):
        drawn = [dataset[(index, epoch)] for epoch in range(8) for index in range(3)]
    texts = {views.view(index, epoch).text for epoch in range(8) for index in range(3)}
    assert len(texts) > len(captions)  # some draws were short attribute descriptions
    assert sorted(tokenizer.asked) == sorted(set(tokenizer.asked)) and set(tokenizer.asked) == texts
    assert [tokens.item() for _, tokens in drawn] == [len(views.view(i, e).text) for e in range(8) for i in range(3)]


class Squares:
    """A dataset of (tensor, tensor) items that can be told to fail at one index or to wait at one."""

    def __init__(self, broken: int = -1, gate: threading.Event | None = None):
        self.broken, self.gate = broken, gate
        self.made: list[int] = []

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        if key == self.broken:
            raise ValueError(f"item {key} is broken")
        if self.gate is not None and key >= 4:
            self.gate.wait()
        self.made.append(key)
        return torch.tensor([key]), torch.tensor([key * key])


def test_the_loading_thread_gives_the_batches_in_order_collated() -> None:
    batches = [[0, 1], [2, 3], [4, 5]]
    with BatchLoader(Squares(), batches) as loader:
        got = [(images.flatten().tolist(), tokens.flatten().tolist()) for images, tokens in loader]
    assert got == [([0, 1], [0, 1]), ([2, 3], [4, 9]), ([4, 5], [16, 25])]


def test_leaving_an_epoch_early_stops_the_loading_thread() -> None:
    gate = threading.Event()
    dataset = Squares(gate=gate)
    with BatchLoader(dataset, [[i, i + 1] for i in range(0, 40, 2)]) as loader:
        for _ in loader:
            assert "carmatch-train-loader" in {thread.name for thread in threading.enumerate()}
            gate.set()  # the thread may make the batches it holds, no more
            break
    assert "carmatch-train-loader" not in {thread.name for thread in threading.enumerate()}
    assert len(dataset.made) < 40


def test_a_loading_error_is_raised_in_the_training_thread() -> None:
    with BatchLoader(Squares(broken=3), [[0, 1], [2, 3], [4, 5]]) as loader:
        seen = []
        with pytest.raises(ValueError, match="item 3 is broken"):
            for images, _ in loader:
                seen.append(images.flatten().tolist())
    assert seen == [[0, 1]]
