"""Hosting on a Hugging Face Space: where data lives there (persist folder, snapshots), ZeroGPU calls, warnings.

May import: ``carmatch.catalog`` (snapshots), ``carmatch.atomic`` and ``carmatch.errors``; ``spaces`` only on
ZeroGPU. Never the embedding, stores, ingest, search, training or UI packages (they import it).
"""
