"""Images and text into vectors: open_clip (torch), exported ONNX towers, the torch-free tokenizer, Titan.

- ``embedder``: load an open_clip model by name + pretrained source; encode images and texts
- ``fast_path``, ``onnx_towers``, ``clip_tokenizer``, ``short_text``: single queries without torch's latency
- ``weights``, ``model_cache``: where weights come from and what they hash to
- ``titan_embedder``: Titan Multimodal Embeddings on Bedrock behind the same interface
- ``loading``: which embedder a model spec names; ``vectors``: the one unit-normalise

May import: ``carmatch.errors``, ``carmatch.images``, ``carmatch.atomic``, ``carmatch.config``, ``carmatch.aws``,
``carmatch.space.zerogpu`` (the ZeroGPU decorator).
Never the catalog, the stores, ingest, search or anything above them.
"""
