"""The searcher: query checks, text/image blending, catalog filters, results.

May import: ``carmatch.catalog``, ``carmatch.embedding``, ``carmatch.stores`` and the top-level helpers.
Never ingest, training, cloud or the UI.
"""
