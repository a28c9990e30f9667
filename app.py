"""carmatch web app: Search (public), Dataset and Training (admin) tabs.

Thin by design: it builds the Gradio Blocks ``demo`` and hands each tab the shared Runtime;
all logic lives in the ``carmatch`` library. ``python app.py`` or ``gradio app.py`` runs it,
and a Hugging Face Space imports ``demo`` from here.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from carmatch.config import load_dotenv_file, load_settings  # noqa: E402
from carmatch.runtime import Runtime  # noqa: E402
from carmatch.ui import dataset_tab, search_tab, training_tab  # noqa: E402

log = logging.getLogger("carmatch.app")

CSS = """
#results .thumbnail-item { aspect-ratio: auto; display: flex; flex-direction: column; height: auto; }
#results .thumbnail-item > img { height: 150px; flex: none; }
#results .caption-label { position: static; max-width: 100%; white-space: pre-line; border: none;
  border-top: 1px solid var(--border-color-primary); border-radius: 0; opacity: 1 !important; }
#results .grid-container { grid-auto-rows: auto; grid-template-rows: none; }
@media (max-width: 640px) {
  #results .thumbnail-item > img { height: 110px; }
}
footer { display: none !important; }
"""


def build_demo(runtime: Runtime) -> gr.Blocks:
    """The whole app for one Runtime."""
    with gr.Blocks(title="carmatch") as demo:
        gr.Markdown("# carmatch\nFind cars in your collection by photo, by description, or both.")
        with gr.Tab("Search", id="search"):
            search_tab.build(demo, runtime)
        with gr.Tab("Dataset", id="dataset"):
            login = dataset_tab.build(demo, runtime)
        with gr.Tab("Training", id="training"):
            training_tab.build(demo, runtime, login)  # one admin login unlocks both tabs
    return demo


if __name__ == "__main__":  # python app.py, gradio app.py and a Space; importing app reads no .env
    load_dotenv_file()
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
runtime = Runtime(load_settings())
demo = build_demo(runtime)

if __name__ == "__main__":
    runtime.start_loading()  # once, in the background; a failure is remembered and shown on every page
    demo.queue(default_concurrency_limit=4).launch(
        theme=gr.themes.Soft(),
        css=CSS,
        allowed_paths=[str(runtime.settings.thumbs_dir.resolve())],
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
    )
