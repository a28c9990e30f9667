"""Hosting on a Hugging Face Space: where data lives there and what its visitors are told.

May import: ``carmatch.catalog`` (snapshots), ``carmatch.errors``; never ``carmatch.config`` (which imports it).
"""
