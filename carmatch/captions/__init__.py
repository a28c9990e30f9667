"""Claude captions on Bedrock: the prompt, which images, live (converse) and batch jobs."""
