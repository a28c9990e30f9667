"""Gradio tabs of the carmatch app. The only part of carmatch that imports Gradio.

One rule for every tab: ``<tab>_tab.py`` lays it out and wires its events, ``<tab>_actions.py``
handles them as plain functions that tests call without a browser. A part of a tab with its own
job is a panel, with the same pair: ``<panel>_panel.py`` lays out, ``<panel>_actions.py`` handles.

- Search: ``search_tab`` / ``search_actions``
- Dataset: ``dataset_tab`` / ``dataset_actions``, with the panels ``dataset_files_panel`` /
  ``dataset_files_actions`` (import captions, export, add images) and ``caption_jobs_panel`` /
  ``caption_jobs_actions`` (Claude batch jobs)
- Training: ``training_tab`` / ``training_actions``

- Search, also: ``search_links`` (shareable URLs), ``search_scripts`` (browser-side scripts), ``frame_view``
  (a car's whole traffic frame with its box drawn; "which car?" for a frame as query)
- Dataset, also: ``server_panel`` / ``server_status`` (the admin's server status; the visitors' one line)
- Dataset, also: ``curation_panel`` / ``curation_actions`` (likely caption mistakes, near-duplicate groups, the
  collection map; ``curation_figure`` draws the map with Plotly)
- ``agent_api``: ``search_cars`` and ``car_filters``, the API endpoints and MCP tools

Shared by all: ``common`` (gr.Error at the edge, progress, the photo input, the unlock row),
``phrasing`` (library errors named by the labels on screen; no Gradio) and ``styles`` (the stylesheet).

May import: every other carmatch package (it is the top); nothing in carmatch imports it.
"""
