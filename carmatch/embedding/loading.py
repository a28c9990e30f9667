"""Which embedder a model spec names: Titan on Bedrock for ``bedrock/...``, open_clip for everything else."""

from __future__ import annotations

from carmatch.config import Settings
from carmatch.embedding.embedder import Embedder, ModelSpec, load_clip
from carmatch.embedding.titan_embedder import BEDROCK_MODEL_PREFIX, TITAN_PRETRAINED, is_bedrock_model, load_titan


def base_spec(settings: Settings) -> ModelSpec:
    """The settings' base model; a Titan model's pretrained source is ``bedrock`` (CLIP tags do not apply)."""
    if is_bedrock_model(settings.model):
        model_id = settings.model.removeprefix(BEDROCK_MODEL_PREFIX).strip()
        return ModelSpec(f"{BEDROCK_MODEL_PREFIX}{model_id}", TITAN_PRETRAINED)  # as TitanEmbedder.spec says
    return ModelSpec(settings.model, settings.pretrained)


def load_embedder(spec: ModelSpec, settings: Settings, background_export: bool = False) -> Embedder:
    """Load the model ``spec`` names: Titan on Bedrock for ``bedrock/...``, else open_clip.

    ``background_export``: a CLIP checkpoint new to the model cache answers on torch while its ONNX
    towers are exported (the app's start-up; a short-lived CLI process exports before it answers).
    """
    if is_bedrock_model(spec.name):
        return load_titan(spec.name, settings)
    return load_clip(spec.name, spec.pretrained, settings.device, settings.offline, background_export=background_export)
