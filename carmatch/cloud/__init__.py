"""Jobs that run elsewhere: SageMaker training, Titan customization and provisioned throughput, pricing, checks.

- ``sagemaker`` (+ ``sagemaker_images``, ``sagemaker_network``): carmatch's own training loop in a PyTorch container
- ``titan_finetune``, ``titan_provision``, ``titan_pricing``: the Titan Multimodal Embeddings alternative
- ``aws_check``: what will work on this AWS account before anything is spent

May import: ``carmatch.aws``, ``carmatch.catalog``, ``carmatch.training`` (the local loop's config, data and
registry) and the top-level helpers. The local training loop never imports this package.
"""
