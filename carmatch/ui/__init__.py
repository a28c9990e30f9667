"""Gradio tabs of the carmatch app. The only part of carmatch that imports Gradio."""
