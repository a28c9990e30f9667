"""Fine-tuning: config, data, loop, evaluation, runs, registry, SageMaker and Titan."""
