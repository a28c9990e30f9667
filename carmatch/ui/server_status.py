"""What the app says about its own state: one plain line for a visitor, the whole story with fixes for an admin.

A visitor never reads an admin's to-do list (a missing storage bucket, weights that did not download, a
demo import that failed): the Search tab says at most "The collection is being prepared" or "Search is
temporarily unavailable", then how big the collection is. The admin, once unlocked in the Dataset tab,
reads every problem with the command or setting that fixes it; the log has the same lines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from carmatch.access import UNKNOWN_CLIENT, check_admin
from carmatch.dataset.demo_background import demo_import_of
from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.space.storage import storage_warning
from carmatch.ui.phrasing import as_text
from carmatch.ui.public import model_label

PREPARING = "The collection is being prepared"
UNAVAILABLE = "Search is temporarily unavailable. Please try again later."
LOADING = "The search model is loading; the first search waits for it."
EMPTY = "The collection is empty."
EMPTY_COLLECTION_HELP = """The collection is empty. Add images, then search them:

```bash
.venv/bin/carmatch ingest /path/to/your/car/photos          # add a folder (recursively)
.venv/bin/carmatch ingest photos/ --captions captions.csv   # ...with captions (columns file,caption)
```
or upload them under **Add images** below."""


def unavailable(info: dict[str, Any]) -> bool:
    """True when no search can be answered: the model failed, or the index belongs to another model."""
    if info["model_state"] == "failed":
        return True
    loaded_key = info.get("model_key")
    return bool(loaded_key and info.get("index_model") and info["index_model"] != loaded_key)


def model_phrase(info: dict[str, Any]) -> str:
    """The model in plain words: the base model by name, or a fine-tuned run."""
    if info["active_run"] != "base":
        return "a model fine-tuned on this collection"
    return f"the {model_label(info['model'])} model"


def public_status(runtime: Runtime) -> str:
    """The Search tab's status for anyone: at most one plain line about a problem, then the collection."""
    runtime.start_loading()
    info = runtime.info(load_model=False)
    job = demo_import_of(runtime)
    lines: list[str] = []
    if job is not None and job.running():
        lines.append(f"{PREPARING}: {job.done:,} of {job.total:,} cars so far; search answers from those already in.")
    elif info["images"] and info["index_size"] is None and not unavailable(info):
        lines.append(f"{PREPARING}; search answers once it is ready.")
    elif unavailable(info):
        lines.append(UNAVAILABLE)
    elif info["model_state"] == "loading":
        lines.append(LOADING)
    if info["images"] == 0:
        if not lines:
            lines.append(EMPTY)
    else:
        lines.append(f"**{info['images']:,} cars** · searched with {model_phrase(info)}")
    return "\n\n".join(lines)


def admin_status(runtime: Runtime) -> str:
    """Everything an admin should know about the server, each problem with its fix (paths included)."""
    info = runtime.info(load_model=False)
    lines: list[str] = []
    if warning := storage_warning(runtime.settings.persist_folder):
        lines.append(f"⚠️ {warning}")
    job = demo_import_of(runtime)
    if job is not None and (line := job.status_line()):
        lines.append(("⏳ " if job.running() else "⚠️ ") + line)
    lines += [
        f"⚠️ {as_text(problem)}" for problem in info["problems"] if not (info["images"] == 0 and "is empty" in problem)
    ]
    if info["model_state"] == "loading":
        lines.append("⏳ The model is loading.")
    if info["images"] == 0:
        lines.append(EMPTY_COLLECTION_HELP)
    where = f"on {info['device']}" if info["device"] else f"({info['model_state']})"
    size = info["index_size"] if info["index_size"] is not None else "no"
    lines.append(
        f"**Server**: {info['images']:,} images · index: {size} vectors · model `{info['model']}` "
        f"(`{info['pretrained']}`, run: {info['active_run']}) {where}"
    )
    if info.get("persist_dir"):
        saved = info.get("last_snapshot")
        when = datetime.fromisoformat(str(saved)).strftime("%Y-%m-%d %H:%M:%S UTC") if saved else "not yet"
        lines.append(f"**Curated work lasts in** `{info['persist_dir']}` · last saved {when}")
    return "\n\n".join(lines)


def retry_model(runtime: Runtime, session_password: str | None, client: str = UNKNOWN_CLIENT) -> str:
    """Admin (an unlocked session): load the model again after fixing what stopped it; the new admin status."""
    check_admin(runtime.settings, session_password, client)
    try:
        runtime.retry_model()
    except CarmatchError:
        pass  # remembered by the runtime and shown first in the status
    return admin_status(runtime)
