"""The curated data set: curation, bulk actions, import, export, the demo collection, the training-set rule.

May import: ``carmatch.catalog``, ``carmatch.captions`` (bulk captioning), ``carmatch.space`` (where the demo
lands on a Space) and the top-level helpers. Never embedding, stores, ingest, search, training, cloud or the UI.
"""
