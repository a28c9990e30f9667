"""Images in: local folders, S3 prefixes and app uploads into the catalog, their vectors into the store.

- ``pipeline``: validate, decode, embed and commit a batch of files (catalog first, then the index)
- ``s3_source``: ``carmatch ingest s3://bucket/prefix/``; ``uploads``: single files and zips from the app
- ``rebuild``: embed what a model has not seen, then assemble its whole index and swap it in
- ``frames``: traffic frames, each car cut out as an image of its own (``ingest --cars`` / ``--boxes``), with
  ``detector`` (a torchvision COCO model kept to vehicles) and ``boxes`` (the box type; COCO JSON and YOLO txt)

May import: ``carmatch.catalog``, ``carmatch.embedding``, ``carmatch.stores``, ``carmatch.dataset.import_captions``
and the top-level helpers. Never search, training, cloud or the UI.
"""
