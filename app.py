"""carmatch web app: Search (public), Dataset and Training (admin) tabs.

Thin by design: it builds the Gradio Blocks ``demo`` and hands each tab the shared Runtime;
all logic lives in the ``carmatch`` library. ``python app.py`` or ``gradio app.py`` runs it,
and a Hugging Face Space imports ``demo`` from here.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from carmatch.space.zerogpu import prepare_zerogpu  # noqa: E402

prepare_zerogpu()  # on a ZeroGPU Space: `spaces` before torch, so the model goes on cuda at start-up

from carmatch.access import RateLimit  # noqa: E402
from carmatch.config import Settings, load_dotenv_file  # noqa: E402
from carmatch.runtime import Runtime  # noqa: E402  (imports neither torch nor Gradio)
from carmatch.space.storage import storage_warning  # noqa: E402
from carmatch.startup import StartupFault, open_runtime  # noqa: E402
from carmatch.thumbs import prune_thumbnails  # noqa: E402

if __name__ == "__main__":  # python app.py, gradio app.py and a Space; importing app reads no .env
    load_dotenv_file()
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
opened = open_runtime()  # a corrupt catalog, a home that is a file…: the fault (logged), shown by the app below
runtime: Runtime | None = opened if isinstance(opened, Runtime) else None
if __name__ == "__main__" and runtime is not None:  # first: the model loads while Gradio imports and the tabs build
    runtime.start_loading()  # once; a failure is remembered and shown on every page

import gradio as gr  # noqa: E402

from carmatch.dataset.demo_background import start_demo_import  # noqa: E402
from carmatch.ui import agent_api, dataset_tab, search_links, search_tab, startup_fault, training_tab  # noqa: E402
from carmatch.ui.api_edge import http_middleware, raw_numbers_reach_handlers  # noqa: E402
from carmatch.ui.styles import APP_CSS  # noqa: E402
from carmatch.ui.thumbnails import start_making_thumbnails, with_thumbnail_cache  # noqa: E402

log = logging.getLogger("carmatch.app")

CSS = APP_CSS  # the app's stylesheet (carmatch/ui/styles.py), given to launch()
UPLOAD_CACHE = (300, 900)  # Gradio's delete_cache: every 5 minutes, delete uploads and outputs over 15 minutes old
HEADER = "# carmatch\nFind cars in your collection by photo, by description, or both."


def build_demo(runtime: Runtime) -> gr.Blocks:
    """The whole app for one Runtime."""
    with gr.Blocks(title="carmatch", delete_cache=UPLOAD_CACHE) as demo:
        gr.Markdown(HEADER)
        searches = RateLimit(runtime.settings.search_per_minute, "searches")  # per client: tab, API and MCP
        # search_cars and car_filters, the API and MCP tools; registered before the tabs (between two tabs an
        # endpoint splits Gradio 6.31's tab bar in two)
        agent_api.register(runtime, searches)
        with gr.Tab("Search", id="search") as search:
            search_tab.build(demo, runtime, searches)
        with gr.Tab("Dataset", id="dataset") as dataset:
            login = dataset_tab.build(demo, runtime)
        with gr.Tab("Training", id="training") as training:
            training_tab.build(demo, runtime, login)  # one admin login unlocks both tabs
        tabs = {"search": search, "dataset": dataset, "training": training}
        search_links.wire_tabs(demo, {name: tab.label or name for name, tab in tabs.items()}, tabs)  # ?tab=
    raw_numbers_reach_handlers(demo)  # an API number the handlers check: one line, never a bare "Error"
    return demo


def build_app(opened: Runtime | StartupFault) -> gr.Blocks:
    """The app for what open_runtime gave: the tabs, or the notice of the fault that stopped it."""
    if isinstance(opened, Runtime):
        return build_demo(opened)
    return startup_fault.build(opened, HEADER, delete_cache=UPLOAD_CACHE)


def launch_options(settings: Settings) -> dict[str, object]:
    """What launch() needs beyond the defaults: the thumbnails folder, and the upload size limit."""
    return {
        "allowed_paths": [str(settings.thumbs_dir.resolve())],
        "max_file_size": settings.max_upload_bytes,  # Gradio answers 413 to anything larger
        "app_kwargs": with_thumbnail_cache(http_middleware(settings), settings.thumbs_dir),  # uploads bounded, unknown
        # endpoints answered, thumbnails kept by browsers for a year
    }


demo = build_app(opened)
settings = opened.settings or Settings()  # unreadable settings: the defaults' upload limit

if __name__ == "__main__":
    if runtime is not None:
        if warning := storage_warning(runtime.settings.persist_folder):
            log.warning("%s", warning)
        prune_thumbnails(runtime.settings.thumbs_dir, runtime.catalog.ids())  # serve thumbnails of live images only
        start_making_thumbnails(runtime.settings.thumbs_dir, runtime.catalog.image_paths())  # ahead of searches
        start_demo_import(runtime)  # a Space's first start: the demo collection, in the background
        if runtime.persister is not None:
            runtime.start_index_catch_up()  # a catalog restored from CARMATCH_PERSIST_DIR: its index, from the cache
    demo.queue(default_concurrency_limit=4).launch(
        mcp_server=True,  # the /search endpoint as an MCP tool (gradio[mcp]); admin actions are private
        theme=gr.themes.Soft(),
        css=CSS,
        **launch_options(settings),  # type: ignore[arg-type]
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
    )
