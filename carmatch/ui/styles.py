"""The app's stylesheet: captions below result thumbnails, phone columns, the busy state, focus and contrast,
the reviewer's screen (editor beside the grid, state badges on tiles, the compact history)."""

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
/* the reviewer's screen: on a desktop the editor stays in view beside the grid while the grid scrolls */
@media (min-width: 1024px) {
  #dataset-editor { position: sticky; top: 8px; align-self: flex-start; max-height: calc(100vh - 16px);
    overflow-y: auto; }
  #dataset-image { max-height: 32vh; }
  #dataset-image img { max-height: calc(32vh - 40px); object-fit: contain; }
}
#dataset-editor .cm-editor-buttons button { min-width: 0; }
/* grid tiles: the review state and the pick as text badges (drawn from the label by the page's script) */
#dataset-grid .caption-label { opacity: 1 !important; color: var(--body-text-color); }
#dataset-grid .thumbnail-item:hover .caption-label, #dataset-grid .thumbnail-item:focus-visible .caption-label {
  white-space: normal; max-width: calc(100% - 8px); max-height: calc(100% - 30px); overflow-y: auto; }
#dataset-grid .thumbnail-item[data-state]::before { content: attr(data-state); position: absolute; top: 4px;
  left: 4px; z-index: 2; font-size: 11px; font-weight: 600; line-height: 1.5; padding: 0 6px; border-radius: 4px;
  color: #fff; background: #4b5563; }
#dataset-grid .thumbnail-item[data-state="approved"]::before { background: #166534; }
#dataset-grid .thumbnail-item[data-state="rejected"]::before { background: #991b1b; }
#dataset-grid .thumbnail-item[data-picked="yes"] { outline: 3px solid #1d4ed8; outline-offset: -3px; }
#dataset-grid .thumbnail-item[data-picked="yes"]::after { content: "picked"; position: absolute; top: 4px;
  right: 4px; z-index: 2; font-size: 11px; font-weight: 600; line-height: 1.5; padding: 0 6px; border-radius: 4px;
  color: #fff; background: #1d4ed8; }
#dataset-grid .thumbnail-item.selected { outline: 3px solid #c2410c; outline-offset: -3px; }
.cm-badge { display: inline-block; font-size: 12px; font-weight: 600; padding: 0 6px; border-radius: 4px;
  color: #fff; background: #4b5563; }
.cm-state-approved { background: #166534; }
.cm-state-rejected { background: #991b1b; }
#dataset-history .cm-history { list-style: none; padding: 0; margin: 0; font-size: 13px; }
#dataset-history .cm-history li { padding: 3px 0; border-bottom: 1px solid var(--border-color-primary); }
#dataset-history .cm-history-head { color: #374151; white-space: nowrap; }
#dataset-history ins { background: #dcfce7; color: #14532d; text-decoration: none; }
#dataset-history del { background: #fee2e2; color: #7f1d1d; }
#dataset-history .cm-history-attrs { color: #374151; font-style: italic; }
/* the training run's progress bar beside Start */
.cm-train-progress { display: flex; flex-direction: column; gap: 4px; justify-content: center; min-height: 40px; }
.cm-train-progress .cm-bar { height: 12px; border-radius: 6px; background: #e5e7eb; overflow: hidden; }
.cm-train-progress .cm-fill { height: 100%; background: #1d4ed8; transition: width 0.4s; }
.cm-train-progress.cm-finished .cm-fill { background: #166534; }
.cm-train-progress.cm-failed .cm-fill, .cm-train-progress.cm-cancelled .cm-fill { background: #991b1b; }
.cm-train-progress .cm-words, .cm-train-progress.cm-idle { font-size: 13px; color: #374151; }
"""
