"""Hosting on a Hugging Face Space: where data lives there and what its visitors are told.

May import: ``carmatch.errors`` and the standard library only (``carmatch.config`` reads it).
"""
