"""The curated data set: curation, bulk actions, import, export, and the one training-set rule."""
