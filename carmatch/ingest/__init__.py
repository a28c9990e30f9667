"""Images in: local folders, S3 prefixes and app uploads into the catalog, their vectors into the store.

- ``pipeline``: validate, decode, embed and commit a batch of files (catalog first, then the index)
- ``s3_source``: ``carmatch ingest s3://bucket/prefix/``; ``uploads``: single files and zips from the app
- ``rebuild``: embed what a model has not seen, then assemble its whole index and swap it in
- ``file_records``: files met by an ingest looked up and recorded (known, new, moved, deleted earlier)
- ``ray_engine`` (Ray Data: read, decode, embed on a cluster) and ``ray_ingest`` (the driver's commits):
  ``--engine ray`` / ``CARMATCH_ENGINE=ray``; Ray itself is optional and imported only when a run starts
- ``frames``: traffic frames, each car cut out as an image of its own (``ingest --cars`` / ``--boxes``), with
  ``detector`` (a torchvision COCO model kept to vehicles) and ``boxes`` (the box type; COCO JSON and YOLO txt)

May import: ``carmatch.catalog``, ``carmatch.embedding``, ``carmatch.stores``, ``carmatch.dataset.import_captions``
and the top-level helpers. Never search, training, cloud or the UI.
"""
