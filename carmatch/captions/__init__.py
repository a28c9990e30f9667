"""Claude captions on Bedrock: the prompt, which images, live (converse) and batch jobs.

May import: ``carmatch.aws``, ``carmatch.catalog`` and the top-level helpers. Never embedding, stores,
ingest, search, training, cloud or the UI.
"""
