"""The app's stylesheet: captions below result thumbnails, phone columns, the busy state, focus and contrast."""

from __future__ import annotations

APP_CSS = """
#results .thumbnail-item { aspect-ratio: auto; display: flex; flex-direction: column; height: auto; }
#results .thumbnail-item > img { height: 150px; flex: none; }
#results .caption-label { position: static; max-width: 100%; white-space: pre-line; border: none;
  border-top: 1px solid var(--border-color-primary); border-radius: 0; opacity: 1 !important; }
#results .grid-container { grid-auto-rows: auto; grid-template-rows: none; }
@media (max-width: 640px) {
  #results .thumbnail-item > img { height: 110px; }
  /* two columns on a phone: nothing reachable only by an unmarked sideways scroll */
  #results .grid-container, #dataset-grid .grid-container {
    grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
}
body.carmatch-busy #results { opacity: 0.45; transition: opacity 0.15s; }
body.carmatch-busy #results::after { content: ""; position: absolute; top: 12px; right: 12px; width: 28px;
  height: 28px; border: 3px solid var(--border-color-primary); border-top-color: var(--color-accent);
  border-radius: 50%; animation: carmatch-spin 0.8s linear infinite; pointer-events: none; }
@keyframes carmatch-spin { to { transform: rotate(360deg); } }
/* a visible focus ring on every control, for keyboard users (WCAG 2.4.7) */
button:focus-visible, input:focus-visible, textarea:focus-visible, [role="tab"]:focus-visible,
[role="option"]:focus-visible, a:focus-visible { outline: 3px solid #1d4ed8 !important; outline-offset: 2px; }
/* AA contrast (4.5:1) for labels and placeholders, lighter than that in the theme */
textarea::placeholder, input::placeholder { color: #5b6270 !important; opacity: 1; }
[data-testid="block-info"], .block-label, .block-info { color: #374151 !important; }
#example-queries { gap: 6px; flex-wrap: wrap; }
#example-queries .example-chip { flex: 0 1 auto; min-width: 0; border-radius: 999px; }
body.carmatch-busy #search-button { cursor: progress; }
"""
