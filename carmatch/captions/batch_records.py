"""One record of a Bedrock batch input file: its recordId and the Converse request body, image inline.

Batch jobs use ``modelInvocationType="Converse"`` (Bedrock's batch docs: each ``modelInput`` then matches
the Converse API's request body), so live and batch captioning share one request builder,
:func:`carmatch.captions.live.converse_request`, and one reply reader,
:func:`carmatch.captions.live.reply_from_converse`. :mod:`carmatch.captions.batch_submit` writes these
lines; :mod:`carmatch.captions.batch_collect` reads the answers back by recordId.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from carmatch.captions.live import PreparedImage, converse_request

INVOCATION_TYPE = "Converse"  # CreateModelInvocationJob modelInvocationType


def record_id_for(n: int) -> str:
    """The recordId of the n-th record of a job: 11 alphanumeric characters, like Bedrock's own."""
    return f"r{n:010d}"


def model_input(prepared: PreparedImage, model: str, max_tokens: int) -> dict[str, Any]:
    """The Converse request body for one image to ``model``: live's request without modelId, the bytes in base64."""
    request = converse_request(prepared, model, max_tokens)
    del request["modelId"]  # the job names the model
    for block in request["messages"][0]["content"]:  # the image, and a small crop's frame
        if "image" in block:
            data = block["image"]["source"]["bytes"]
            block["image"]["source"] = {"bytes": base64.b64encode(data).decode("ascii")}  # JSON carries blobs as base64
    return request


def jsonl_line(record_id: str, prepared: PreparedImage, model: str, max_tokens: int) -> bytes:
    """One line of a batch input file for ``model``, newline included."""
    record = {"recordId": record_id, "modelInput": model_input(prepared, model, max_tokens)}
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
