"""The local fine-tuning loop: config, schedule, data, loop, evaluation, runs, registry.

Runs on this machine or inside a SageMaker container (``entry``); jobs elsewhere live in ``carmatch.cloud``.
May import: ``carmatch.catalog``, ``carmatch.dataset``, ``carmatch.embedding``, ``carmatch.ingest`` (activation
re-embeds), ``carmatch.space`` (ZeroGPU chunks) and the top-level helpers. Never ``carmatch.cloud`` or the UI.
"""
