"""One record of a Bedrock batch input file: its recordId and the Anthropic Messages body, image inline.

:mod:`carmatch.captions.batch_submit` writes these lines; :mod:`carmatch.captions.batch_collect` reads
the answers back by recordId.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from carmatch.captions.live import PreparedImage
from carmatch.captions.prompt import SYSTEM_PROMPT, USER_PROMPT

ANTHROPIC_VERSION = "bedrock-2023-05-31"


def record_id_for(n: int) -> str:
    """The recordId of the n-th record of a job: 11 alphanumeric characters, like Bedrock's own."""
    return f"r{n:010d}"


def model_input(prepared: PreparedImage, max_tokens: int) -> dict[str, Any]:
    """The Anthropic Messages body Bedrock sends to Claude for one image (modelInvocationType InvokeModel)."""
    return {
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "system": SYSTEM_PROMPT,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": prepared.media_type,
                            "data": base64.b64encode(prepared.data).decode("ascii"),
                        },
                    },
                    {"type": "text", "text": USER_PROMPT},
                ],
            }
        ],
    }


def jsonl_line(record_id: str, prepared: PreparedImage, max_tokens: int) -> bytes:
    """One line of a batch input file, newline included."""
    record = {"recordId": record_id, "modelInput": model_input(prepared, max_tokens)}
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
