"""A carmatch app process on the Space start-up path, for tests/space/test_persistence.py.

``write CARS``: ingest drawn cars with approved captions and attributes, train a tiny run, then edit
captions one by one, printing ``saved N`` once edit N is in a snapshot; it never exits by itself (the test
kills it). ``read``: print what the catalog holds as JSON, after the index is back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from carmatch.locations import checkpoint_file
from carmatch.runtime import Runtime
from carmatch.startup import open_runtime
from carmatch.training import registry
from carmatch.training.runs import prepare_run, run_training
from tests.training_support import fast_config, fill_with_cars

SAVE_TIMEOUT_SECONDS = 120


def state(runtime: Runtime) -> dict[str, object]:
    """Every image's caption, review state and attributes, and every registered run, as plain data."""
    records = runtime.catalog.get_many(runtime.catalog.ids())
    images = {
        image_id: {"caption": r.caption, "state": r.review_state, "attributes": r.attributes}
        for image_id, r in records.items()
    }
    runs = {}
    for m in registry.list_models(runtime.catalog):
        checkpoint = checkpoint_file(m.checkpoint, runtime.settings.files_home)  # a relative record: in the bucket
        runs[m.id] = {
            "status": m.status,
            "checkpoint": str(checkpoint),
            "exists": bool(checkpoint and checkpoint.is_file()),
        }
    return {"images": images, "runs": runs}


def write(runtime: Runtime, cars: Path) -> None:
    assert runtime.persister is not None
    fill_with_cars(runtime, cars, seeds=1, attributes=True)
    run_id = prepare_run(runtime.catalog, runtime.settings, fast_config(runtime, epochs=1, batch_size=4))
    run_training(runtime.catalog, runtime.settings, run_id)
    ids = sorted(runtime.catalog.ids())
    for n, image_id in enumerate(ids, 1):
        attributes = runtime.catalog.get(image_id).attributes
        runtime.catalog.set_caption(
            image_id, f"edited caption {n}", "human", attributes=attributes, review_state="approved"
        )
        assert runtime.persister.wait_saved(SAVE_TIMEOUT_SECONDS)
        print(f"saved {n}", flush=True)
    sys.stdin.read()  # wait to be killed


def main(argv: list[str]) -> int:
    opened = open_runtime()
    if not isinstance(opened, Runtime):
        print(f"fault {opened.error}", flush=True)
        return 1
    if argv[0] == "write":
        write(opened, Path(argv[1]))
        return 0
    opened.catch_up_index()
    print(json.dumps({**state(opened), "hits": len(opened.search("a red sedan", k=3).results)}), flush=True)
    opened.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
