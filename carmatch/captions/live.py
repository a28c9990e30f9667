"""Claude captions on Bedrock, live: a few concurrent ``converse`` calls, each result committed as it arrives.

The Bedrock Runtime client is passed in (tests hand in one wrapped by ``botocore.stub.Stubber``).
Batch captioning for thousands of images lives in :mod:`carmatch.captions.batch_submit`; both share the
image preparation defined here, the image selection (:mod:`carmatch.captions.select`) and the
fatal-error policy (:mod:`carmatch.captions.retry`); throttling and 5xx are retried by botocore itself
(:func:`carmatch.aws.make_client`).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from carmatch.aws import explain_aws_error
from carmatch.bedrock_models import inference_config
from carmatch.captions.frame_context import FrameContext, frame_contexts, outlined_jpeg
from carmatch.captions.prompt import (
    CROP_USER_PROMPT,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    USER_PROMPT,
    CaptionReplyError,
    parse_caption_reply,
)
from carmatch.captions.retry import error_code, is_fatal
from carmatch.captions.select import select_images
from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.errors import AwsError, ImageError, NotFoundError
from carmatch.images import load_image
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

SOURCE_LIVE = "claude-live"

# Claude's recommendation: long side <= 1568 px and about 1.15 megapixels (larger is scaled down
# by the service anyway, costing latency, not accuracy). Converse refuses images over 3.75 MB or
# 8000 px a side.
CLAUDE_MAX_SIDE_PX = 1568
CLAUDE_MAX_PIXELS = 1_150_000
CONVERSE_MAX_IMAGE_BYTES = 3_750_000
CONVERSE_MAX_SIDE_PX = 8000
JPEG_QUALITY = 85
MIN_JPEG_QUALITY = 40

MAX_CONSECUTIVE_AWS_ERRORS = 5  # per-image AWS errors in a row before the run stops

_HEX = re.compile(r"[0-9a-f]{1,64}")
Cancel = Callable[[], bool]


def _never() -> bool:
    return False


# -- images ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send to Claude: JPEG bytes within Claude's and Converse's limits."""

    data: bytes
    width: int
    height: int
    format: str = "jpeg"
    media_type: str = "image/jpeg"
    context: PreparedImage | None = None  # a small crop's frame, the crop outlined: sent second


def fit_size(
    width: int, height: int, max_side: int = CLAUDE_MAX_SIDE_PX, max_pixels: int = CLAUDE_MAX_PIXELS
) -> tuple[int, int]:
    """The largest size with the same aspect ratio inside ``max_side`` and ``max_pixels``."""
    scale = min(1.0, max_side / max(width, height), (max_pixels / (width * height)) ** 0.5)
    return max(1, int(width * scale)), max(1, int(height * scale))


def prepare_image(path: Path | str, settings: Settings, max_bytes: int = CONVERSE_MAX_IMAGE_BYTES) -> PreparedImage:
    """Load, validate and shrink an image so it fits Claude's recommended size and Converse's limits."""
    loaded = load_image(Path(path), settings.max_image_pixels, settings.max_image_bytes)
    image = loaded.image
    width, height = fit_size(image.width, image.height, min(CLAUDE_MAX_SIDE_PX, CONVERSE_MAX_SIDE_PX))
    quality = JPEG_QUALITY
    while True:
        resized = image if (width, height) == image.size else image.resize((width, height), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        resized.save(buf, format="JPEG", quality=quality, optimize=True)
        data = buf.getvalue()
        if len(data) <= max_bytes:
            return PreparedImage(data, width, height)
        if quality > MIN_JPEG_QUALITY:
            quality -= 15
        elif width > 64 and height > 64:
            width, height = int(width * 0.8), int(height * 0.8)
        else:
            raise ImageError(f"{Path(path).name}: cannot be shrunk under {max_bytes / 1e6:.2f} MB")


# -- a small crop's frame ---------------------------------------------------------------------
def prepare_with_frame(path: Path | str, settings: Settings, context: FrameContext | None) -> PreparedImage:
    """The image for Claude; a small crop also carries its frame, the crop outlined, within Converse's limits."""
    prepared = prepare_image(path, settings)
    if context is None:
        return prepared
    frame = prepare_image(context.frame_path, settings, CONVERSE_MAX_IMAGE_BYTES - len(prepared.data))
    framed = PreparedImage(outlined_jpeg(frame.data, context), frame.width, frame.height)
    return PreparedImage(prepared.data, prepared.width, prepared.height, context=framed)


def _context_blocks(prepared: PreparedImage) -> list[dict[str, Any]]:
    if prepared.context is None:
        return []
    return [{"image": {"format": prepared.context.format, "source": {"bytes": prepared.context.data}}}]


# -- live -----------------------------------------------------------------------------------
@dataclass
class LiveReport:
    """What a live captioning run did."""

    requested: int = 0
    captioned: int = 0
    failed: int = 0
    skipped_human: int = 0
    missing: int = 0
    cancelled: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the CLI and the app."""
        parts = [f"Captioned {self.captioned} of {self.requested} images with Claude"]
        if self.failed:
            parts.append(f"{self.failed} failed (stored as failures, not captions)")
        if self.skipped_human:
            parts.append(f"{self.skipped_human} kept their human caption")
        if self.missing:
            parts.append(f"{self.missing} no longer in the collection")
        text = "; ".join(parts) + "."
        if self.cancelled:
            text += " Cancelled: what was captioned is saved; run again to continue."
        return text


@dataclass
class _Outcome:
    image_id: str
    caption: Any = None  # ParsedCaption
    error: str | None = None
    raw: str | None = None
    aws_error: BaseException | None = None


def converse_request(prepared: PreparedImage, model: str, max_tokens: int) -> dict[str, Any]:
    """The keyword arguments of the Bedrock Runtime ``converse`` call for one image (``max_tokens``: the reply's)."""
    return {
        "modelId": model,
        "system": [{"text": SYSTEM_PROMPT}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"image": {"format": prepared.format, "source": {"bytes": prepared.data}}},
                    *_context_blocks(prepared),
                    {"text": USER_PROMPT if prepared.context is None else CROP_USER_PROMPT},
                ],
            }
        ],
        "inferenceConfig": inference_config(model, max_tokens),  # what this model accepts (bedrock_models)
    }


def reply_from_converse(response: dict[str, Any]) -> str:
    """The text of a ``converse`` reply; CaptionReplyError when it was cut off or filtered."""
    blocks = response.get("output", {}).get("message", {}).get("content", []) or []
    text = "".join(block.get("text", "") for block in blocks if isinstance(block, dict))
    stop = response.get("stopReason")
    if stop in ("content_filtered", "guardrail_intervened"):
        raise CaptionReplyError(f"model declined ({stop})", text, refusal=True)
    if stop in ("max_tokens", "model_context_window_exceeded"):
        raise CaptionReplyError(f"reply cut off ({stop}); raise CARMATCH_CAPTION_MAX_TOKENS", text)
    return text


def _caption_one(
    client: Any, image_id: str, path: str, settings: Settings, context: FrameContext | None = None
) -> _Outcome:
    try:
        prepared = prepare_with_frame(path, settings, context)
    except ImageError as exc:
        return _Outcome(image_id, error=f"image unreadable: {exc}")
    request = converse_request(prepared, settings.caption_model, settings.caption_max_tokens)
    try:
        response = client.converse(**request)  # botocore retries throttling and 5xx (carmatch.aws.make_client)
    except Exception as exc:  # noqa: BLE001 - botocore errors: classified by the caller
        if type(exc).__module__.startswith("botocore"):
            return _Outcome(image_id, error=f"{error_code(exc)}: {exc}", aws_error=exc)
        raise
    try:
        text = reply_from_converse(response)
        return _Outcome(image_id, caption=parse_caption_reply(text), raw=text)
    except CaptionReplyError as exc:
        return _Outcome(image_id, error=str(exc), raw=exc.raw)


def caption_live(
    catalog: Catalog,
    client: Any,
    image_ids: Sequence[str],
    settings: Settings,
    *,
    overwrite_human: bool = False,
    progress: Progress = no_progress,
    cancel: Cancel = _never,
) -> LiveReport:
    """Caption images with Claude through ``converse``, committing each result as it arrives.

    Raises AwsError (after saving what finished) when an error would fail every image: missing
    credentials, no model access, an unknown model id or region.
    """
    ids = list(dict.fromkeys(image_ids))
    records = catalog.get_many(ids)
    report = LiveReport(requested=len(ids))
    report.missing = sum(1 for i in ids if i not in records)
    queue = iter([i for i in ids if i in records])
    run = _LiveRun(catalog, settings, overwrite_human, report, queue, done=report.missing)
    total = len(ids)
    workers = max(1, settings.caption_concurrency)
    contexts = frame_contexts(catalog, list(records))
    progress(run.done, total, f"captioning {run.done}/{total}")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caption") as pool:

        def start(image_id: str) -> Future[_Outcome]:
            path = records[image_id].path
            return pool.submit(_caption_one, client, image_id, path, settings, contexts.get(image_id))

        in_flight: dict[Future[_Outcome], str] = {}
        run.fill(in_flight, workers, start, cancel)
        while in_flight:
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for future in finished:
                in_flight.pop(future)
                run.settle(future.result())
            progress(run.done, total, f"captioning {run.done}/{total}")
            run.fill(in_flight, workers, start, cancel)
    if run.fatal is not None:
        log.warning("Live captioning stopped: %s", run.fatal)
        raise explain_aws_error(run.fatal, "caption with Claude on Bedrock", settings.aws_region) from run.fatal
    return report


@dataclass
class _LiveRun:
    """The state of one live run: what is left to send, what finished, and the AWS error that stops it."""

    catalog: Catalog
    settings: Settings
    overwrite_human: bool
    report: LiveReport
    queue: Iterator[str]
    done: int  # images settled so far, those gone from the collection included
    fatal: BaseException | None = None
    consecutive_aws: int = 0

    def fill(
        self,
        in_flight: dict[Future[_Outcome], str],
        workers: int,
        start: Callable[[str], Future[_Outcome]],
        cancel: Cancel,
    ) -> None:
        """Start images until ``workers`` are busy, unless the run is stopping, cancelled or out of images."""
        while self.fatal is None and not self.report.cancelled and len(in_flight) < workers:
            if cancel():
                self.report.cancelled = True
                return
            image_id = next(self.queue, None)
            if image_id is None:
                return
            in_flight[start(image_id)] = image_id

    def settle(self, outcome: _Outcome) -> None:
        """Commit one finished image, or keep the AWS error that stops the run."""
        if outcome.aws_error is not None and is_fatal(outcome.aws_error):
            self.fatal = self.fatal or outcome.aws_error
            return
        self.consecutive_aws = self.consecutive_aws + 1 if outcome.aws_error is not None else 0
        _commit_live(self.catalog, outcome, self.settings, self.overwrite_human, self.report)
        self.done += 1
        if self.consecutive_aws >= MAX_CONSECUTIVE_AWS_ERRORS and self.fatal is None:
            self.fatal = outcome.aws_error


def _commit_live(
    catalog: Catalog, outcome: _Outcome, settings: Settings, overwrite_human: bool, report: LiveReport
) -> None:
    try:
        if outcome.caption is not None:
            version = catalog.set_caption(
                outcome.image_id,
                outcome.caption.caption,
                SOURCE_LIVE,
                attributes=outcome.caption.attributes,
                model=settings.caption_model,
                prompt_version=PROMPT_VERSION,
                overwrite_human=overwrite_human,
            )
            if version is None:
                report.skipped_human += 1
            else:
                report.captioned += 1
            return
        catalog.record_caption_failure(
            outcome.image_id,
            SOURCE_LIVE,
            outcome.error or "unknown error",
            raw=outcome.raw,
            model=settings.caption_model,
            prompt_version=PROMPT_VERSION,
        )
        report.failed += 1
        report.failures.append((outcome.image_id, outcome.error or "unknown error"))
    except NotFoundError:
        report.missing += 1  # deleted while it was being captioned


def bedrock_runtime_client(settings: Settings) -> Any:
    """A Bedrock Runtime client for live captioning; AwsError with set-up help when no credentials exist."""
    from carmatch.aws import CALL_ATTEMPTS, make_client

    require_credentials()
    # bulk work: one client shared by every caption thread, so adaptive rate limiting slows them all together
    return make_client("bedrock-runtime", settings.aws_region, total_attempts=CALL_ATTEMPTS, bulk=True)


def caption_selected(
    catalog: Catalog,
    settings: Settings,
    image_ids: Sequence[str],
    *,
    overwrite_human: bool = False,
    client: Any = None,
    progress: Progress = no_progress,
    cancel: Cancel = _never,
) -> LiveReport:
    """Caption images a person picked (the app's "Caption with Claude"), even ones Claude captioned before."""
    ids = select_images(catalog, image_ids, overwrite_human=overwrite_human, redo=True)
    report = LiveReport()
    if ids:
        report = caption_live(
            catalog,
            client if client is not None else bedrock_runtime_client(settings),
            ids,
            settings,
            overwrite_human=overwrite_human,
            progress=progress,
            cancel=cancel,
        )
    report.skipped_human += len(set(catalog.resolve_ids(image_ids))) - len(ids)
    return report


def require_credentials() -> None:
    """Raise AwsError with set-up help when boto3 finds no AWS credentials (no AWS call)."""
    from carmatch.aws import CREDENTIALS_HELP, has_credentials

    if not has_credentials():
        raise AwsError(f"Cannot caption with Claude on Bedrock: {CREDENTIALS_HELP}")
