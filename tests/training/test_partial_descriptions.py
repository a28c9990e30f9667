"""Partial descriptions: attributes phrased as people type, queries from attribute subsets, scores, training views."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import Counter

import numpy as np
import pytest
import torch

from carmatch.errors import InvalidInputError
from carmatch.training.attributes import describe, pair_attributes, phrasable, phrase, random_description
from carmatch.training.contrastive import MultiPositiveClipLoss
from carmatch.training.data import Pair, epoch_batches, read_pairs_jsonl, split_hash, write_pairs_jsonl
from carmatch.training.queries import Query, build_queries, partial_metrics
from carmatch.training.views import CaptionViews, hard_negative_order, parse_views


def test_attribute_values_are_phrased_through_the_one_table() -> None:
    assert phrase("body_type", "pickup_truck") == phrase("body_type", "pickup") == "pickup truck"
    assert phrase("body_type", "pickup truck") == "pickup truck"
    assert phrase("viewpoint", "front-left") == "seen from the front left"
    assert phrase("color", "dark blue") == "dark blue"
    assert phrase("body_type", "spaceship") is None and phrase("viewpoint", "interior") is None
    assert phrase("color", "a shade somewhere between teal and grey") is None  # not a few plain words


def test_descriptions_read_like_typed_queries() -> None:
    assert describe({"color": "red", "body_type": "suv"}) == "a red suv"
    assert describe({"body_type": "van", "viewpoint": "facing left"}) == "a van facing left"
    assert describe({"color": "red"}) == "a red car"
    assert describe({"color": "orange"}) == "an orange car"
    words = {"viewpoint": "seen from the front", "model": "corolla", "make": "toyota", "color": "white"}
    assert describe(words) == "a white toyota corolla car seen from the front"


def test_unphrasable_values_are_skipped_and_counted_not_refused() -> None:
    attrs = pair_attributes({"color": "Red", "body_type": "other", "viewpoint": "interior", "make": None, "x": "y"})
    assert attrs == (("color", "red"), ("viewpoint", "interior"))  # "other", null and unknown keys are dropped
    skipped: Counter[str] = Counter()
    words = phrasable((("body_type", "spaceship"), ("color", "red"), ("viewpoint", "interior")), skipped)
    assert words == {"color": "red"}
    assert skipped == Counter({"body_type=spaceship": 1, "viewpoint=interior": 1})


def test_random_description_names_a_non_empty_subset_of_the_attributes() -> None:
    words = {"color": "red", "body_type": "suv", "viewpoint": "facing left"}
    rng = random.Random(3)
    seen = set()
    for _ in range(60):
        text, chosen = random_description(words, rng)
        assert chosen and set(chosen) <= set(words) and describe(chosen) in text
        seen.add(frozenset(chosen))
    assert len(seen) == 7  # every non-empty subset turns up


WORDS = [
    {"color": "red", "body_type": "suv"},
    {"color": "red", "body_type": "van"},
    {"color": "blue", "body_type": "suv"},
    {"color": "blue", "body_type": "van"},
    {"color": "red"},  # no body type: left out of body-type queries
    {},
]


def test_queries_are_the_attribute_combinations_that_separate_images() -> None:
    queries = build_queries(WORDS, [("color", "body_type"), ("color",), ("body_type",)])
    assert [q.text for q in queries] == [
        "a blue suv",
        "a red suv",
        "a blue van",
        "a red van",
        "a blue car",
        "a red car",
        "a suv",
        "a van",
    ]
    relevant, candidate = Query((("body_type", "suv"), ("color", "red"))).judge(WORDS)
    assert relevant.tolist() == [True, False, False, False, False, False]
    assert candidate.tolist() == [True, True, True, True, False, False]
    # a combination every candidate has separates nothing: no query
    assert build_queries([{"color": "red"}, {"color": "red"}, {}], [("color",)]) == []


def test_precision_and_recall_at_k_on_constructed_embeddings() -> None:
    words = [{"color": "red"}] * 2 + [{"color": "blue"}] * 4
    images = np.eye(6)
    red = np.array([0.1, 0.9, 0.8, 0.0, 0.0, 0.0])  # ranks: image 1, image 2 (blue), image 0, ...
    blue = np.array([0.0, 0.0, 0.5, 0.6, 0.7, 0.8])  # ranks the four blue images first
    queries = [Query((("color", "red"),)), Query((("color", "blue"),))]
    metrics = partial_metrics(images, np.stack([red, blue]), queries, words)
    assert metrics["attr_queries"] == 2.0
    assert metrics["attr_p1"] == pytest.approx((1 + 1) / 2)
    assert metrics["attr_p5"] == pytest.approx((2 / 5 + 4 / 5) / 2)
    assert metrics["attr_r1"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert metrics["attr_r5"] == pytest.approx(1.0)


def test_unseen_combinations_are_scored_on_their_own() -> None:
    queries = build_queries(WORDS[:4], [("color", "body_type")])
    images = np.eye(4)
    texts = np.stack([images[1], images[0], images[0], images[1]])  # the blue queries find red cars
    seen = [{"color": "red", "body_type": "suv"}, {"color": "red", "body_type": "van"}, {"color": "blue"}]
    metrics = partial_metrics(images, texts, queries, WORDS[:4], seen)
    assert [q.text for q in queries] == ["a blue suv", "a red suv", "a blue van", "a red van"]
    assert metrics["attr_unseen_queries"] == 2.0 and metrics["attr_queries"] == 4.0
    assert metrics["attr_unseen_p1"] == 0.0 and metrics["attr_p1"] == 0.5


def test_caption_views_mix_is_parsed_and_refused_clearly() -> None:
    assert parse_views("full,attributes") == {"full": 1.0, "attributes": 1.0}
    assert parse_views("full:1, attributes:3") == {"full": 1.0, "attributes": 3.0}
    for bad in ("full,words", "full:0", "attributes:x", "full,full", ""):
        with pytest.raises(InvalidInputError) as info:
            parse_views(bad)
        assert info.value.problems[0].field == "caption_views"


def _views(mix: str) -> CaptionViews:
    captions = ["a red suv parked by a wall", "a blue suv on a road", "a red van", "an old car"]
    attributes = [
        (("body_type", "suv"), ("color", "red")),
        (("body_type", "suv"), ("color", "blue")),
        (("body_type", "van"), ("color", "red"), ("viewpoint", "interior")),
        (),
    ]
    return CaptionViews(captions, attributes, mix, seed=1)


def test_views_are_seeded_and_images_without_attributes_keep_their_caption() -> None:
    views = _views("full,attributes")
    assert views.skipped == Counter({"viewpoint=interior": 1})
    texts = [[views.view(i, epoch).text for i in range(4)] for epoch in range(30)]
    assert texts == [[_views("full,attributes").view(i, epoch).text for i in range(4)] for epoch in range(30)]
    assert {row[3] for row in texts} == {"an old car"}
    assert {row[0] for row in texts} > {"a red suv parked by a wall"}  # short descriptions too
    assert views.view(0, -1).text == "a red suv parked by a wall"  # evaluation: the caption
    only_full = _views("full")
    assert {only_full.view(0, epoch).text for epoch in range(30)} == {"a red suv parked by a wall"}
    mostly_short = _views("full:1,attributes:9")
    full_share = sum(mostly_short.view(0, e).asks is None for e in range(300)) / 300
    assert 0.03 < full_share < 0.2


def test_positives_mark_every_image_a_short_description_fits() -> None:
    views = _views("attributes")
    keys = [(i, 0) for i in range(4)]
    epoch = next(e for e in range(100) if views.view(0, e).asks == (("color", "red"),))
    mask = views.positives([(i, epoch) for i in range(4)])
    assert mask[0].tolist() == [True, False, True, False]  # "a red car" fits the red suv and the red van
    assert mask.diagonal().all()
    assert views.positives(keys)[3].tolist() == [False, False, False, True]  # a full caption fits itself


def test_hard_negatives_sit_beside_the_image_they_differ_from_in_one_attribute() -> None:
    words = [
        {"color": "red", "body_type": "suv"},
        {"color": "green", "body_type": "van"},
        {"color": "blue", "body_type": "suv"},
        {},
        {"color": "red", "body_type": "van"},
    ]
    assert hard_negative_order([0, 1, 2, 3, 4], words, 1) == [0, 4, 1, 2, 3]  # red suv, red van
    assert hard_negative_order([0, 1, 2, 3, 4], words, 2) == [0, 4, 2, 1, 3]  # ... and the blue suv
    assert hard_negative_order([1, 0, 2, 3, 4], words, 1) == [1, 4, 0, 2, 3]
    assert hard_negative_order([3, 1, 0, 2, 4], words, 0) == [3, 1, 0, 2, 4]
    assert hard_negative_order([3, 1, 0], [{}, {}, {}], 1) == [3, 1, 0]
    plain = epoch_batches(5, 2, seed=0, epoch=0)
    assert epoch_batches(5, 2, 0, 0, [{}] * 5, 1) == plain  # no attributes: the order runs always had
    (whole,) = epoch_batches(5, 5, 0, 0, words, 1)
    order = [index for index, _ in whole]
    (shuffled,) = epoch_batches(5, 5, 0, 0)
    assert order == hard_negative_order([index for index, _ in shuffled], words, 1) == [2, 0, 1, 4, 3]


def test_multi_positive_loss_is_clip_loss_with_one_positive_and_spreads_targets_otherwise() -> None:
    from open_clip.loss import ClipLoss

    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    scale = torch.tensor(10.0)
    loss = MultiPositiveClipLoss()
    expected = ClipLoss()(images, texts, scale)
    assert loss(images, texts, scale) == pytest.approx(float(expected), abs=1e-6)
    assert loss(images, texts, scale, np.eye(4, dtype=bool)) == pytest.approx(float(expected), abs=1e-6)
    mask = np.eye(4, dtype=bool)
    mask[0, 2] = True  # text 0 also describes image 2
    logits = scale * images @ texts.T
    t2i = -(torch.log_softmax(logits.T, dim=1)[0, [0, 2]].mean())
    t2i_rest = -torch.log_softmax(logits.T, dim=1)[[1, 2, 3], [1, 2, 3]]
    i2t_log = torch.log_softmax(logits, dim=1)
    i2t = -torch.stack([i2t_log[0, 0], i2t_log[1, 1], (i2t_log[2, 0] + i2t_log[2, 2]) / 2, i2t_log[3, 3]])
    manual = ((t2i + t2i_rest.sum()) / 4 + i2t.mean()) / 2
    assert float(loss(images, texts, scale, mask)) == pytest.approx(float(manual), abs=1e-5)


def test_pairs_file_keeps_attributes_and_old_pairs_keep_their_hash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plain = Pair("a" * 64, str(tmp_path / "a.png"), "a red suv", "train")
    with_attrs = Pair("b" * 64, str(tmp_path / "b.png"), "a van", "test", (("body_type", "van"), ("color", "blue")))
    write_pairs_jsonl([plain, with_attrs], tmp_path / "pairs.jsonl")
    lines = (tmp_path / "pairs.jsonl").read_text().splitlines()
    assert "attributes" not in lines[0] and '"attributes": {"body_type": "van", "color": "blue"}' in lines[1]
    assert read_pairs_jsonl(tmp_path / "pairs.jsonl") == [plain, with_attrs]
    old_way = hashlib.blake2b(f"{plain.image_id}\ttrain\ta red suv\n".encode(), digest_size=12).hexdigest()
    assert split_hash([plain]) == old_way  # runs from before attributes still resume
    assert split_hash([with_attrs]) != split_hash([dataclasses.replace(with_attrs, attributes=())])
