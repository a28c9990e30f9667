"""The app's public HTTP edge: what any client may send is answered in one line, never a bare "Error" or a 500.

- :func:`raw_numbers_reach_handlers`: a Number or Slider given a string, None or NaN through the API hands the
  value to its handler, whose library check names the field ("The number of results must be a whole number
  (got 'abc')") instead of Gradio's preprocess failing with a bare "Error".
- :class:`UnknownEndpoints`: a call naming an endpoint number the app does not have gets 404 and one line.
- :func:`http_middleware`: the ``app_kwargs`` for ``launch()``: these and the per-visitor upload bounds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from carmatch.config import Settings
from carmatch.ui.upload_limits import ASGIApp, Message, Receive, Scope, Send, UploadLimits

log = logging.getLogger(__name__)

CALL_PATHS = ("/queue/join", "/run/predict", "/api/predict")  # where a client names an endpoint by number


def raw_numbers_reach_handlers(demo: gr.Blocks) -> int:
    """Let every Number and Slider pass a value its preprocess cannot read on to the handler; how many."""
    wrapped = 0
    for block in demo.blocks.values():
        if isinstance(block, gr.Number | gr.Slider):
            block.preprocess = _lenient(block.preprocess)  # type: ignore[method-assign, assignment]
            wrapped += 1
    return wrapped


def _lenient(preprocess: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def read(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except gr.Error:
            raise  # out of the slider's range: Gradio's own message already says so
        except (TypeError, ValueError, OverflowError):
            return payload  # the handler's check says what is wrong with it

    return read


class UnknownEndpoints:
    """ASGI middleware: a call whose endpoint number does not exist is 404 with one line, not a 500."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope.get("type") != "http" or not path.rstrip("/").endswith(CALL_PATHS):
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except KeyError as exc:  # Gradio looks the number up in its table of functions
            if started:
                raise
            log.info("Call to an unknown endpoint %s refused", exc)
            body = json.dumps({"error": f"There is no endpoint number {exc}: see the app's API page."}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def http_middleware(settings: Settings) -> dict[str, Any]:
    """The ``app_kwargs`` for ``demo.launch()``: unknown endpoints answered, uploads bounded per visitor."""
    from starlette.middleware import Middleware

    return {"middleware": [Middleware(UnknownEndpoints), Middleware(UploadLimits, settings=settings)]}  # type: ignore[arg-type]
