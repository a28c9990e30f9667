"""Captioning a car cut from a traffic frame: a small crop goes to Claude with its frame, the car outlined."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from carmatch.captions.batch_records import model_input
from carmatch.captions.frame_context import frame_contexts
from carmatch.captions.live import converse_request, prepare_with_frame
from carmatch.captions.prompt import CROP_USER_PROMPT, USER_PROMPT
from carmatch.ingest.boxes import read_box_file
from carmatch.ingest.frames import FrameIngestor
from carmatch.outlines import CHOSEN_RGB
from carmatch.runtime import Runtime
from tests.ingest.frame_drawing import coco_file, draw_frames


def test_a_small_crop_is_sent_with_its_frame_and_a_whole_image_alone(runtime: Runtime, tmp_path: Path) -> None:
    folder = draw_frames(tmp_path / "frames")
    boxes = read_box_file(coco_file(tmp_path / "boxes.json"))
    FrameIngestor(runtime.ingestor(), runtime.settings.crops_dir, box_file=boxes).ingest_folder(folder)
    catalog, settings = runtime.catalog, runtime.settings
    ids = catalog.ids()
    contexts = frame_contexts(catalog, ids)
    links = catalog.crop_links(ids)
    assert set(contexts) == set(links)  # every drawn car is small; the car-less frame is no crop
    crop_id = next(i for i, link in links.items() if link.box == (10, 20, 106, 84))
    prepared = prepare_with_frame(catalog.get(crop_id).path, settings, contexts[crop_id])
    content = converse_request(prepared, settings.caption_model, 100)["messages"][0]["content"]
    assert [list(block) for block in content] == [["image"], ["image"], ["text"]]
    assert content[2]["text"] == CROP_USER_PROMPT
    frame = np.asarray(Image.open(io.BytesIO(content[1]["image"]["source"]["bytes"])).convert("RGB"), dtype=int)
    assert frame.shape[:2] == (200, 320)
    edge = frame[40, 10]  # the box's left edge, drawn red over the car
    assert np.abs(edge - np.array(CHOSEN_RGB)).max() < 60
    batch = model_input(prepared, settings.caption_model, 100)["messages"][0]["content"]
    assert base64.b64decode(batch[1]["image"]["source"]["bytes"]) == prepared.context.data  # type: ignore[union-attr]
    whole_id = next(i for i in ids if i not in links)
    alone = converse_request(prepare_with_frame(catalog.get(whole_id).path, settings, None), "m", 100)
    assert [b.get("text") for b in alone["messages"][0]["content"]] == [None, USER_PROMPT]
