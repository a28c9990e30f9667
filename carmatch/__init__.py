"""carmatch: find cars in your own image collection by photo or description.

The library works without Gradio; ``app.py`` and ``carmatch.ui`` are the only Gradio users.
"""

__version__ = "0.1.0"
