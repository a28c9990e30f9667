"""The admin's server panel in the Dataset tab: storage, model, index and demo problems with their fixes.

Hidden until the session unlocks; the retry button shows only while the model failed to load, and acts
with the session's own unlock (one password check, throttled where the unlock is).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from carmatch.access import admin_enabled, is_admin
from carmatch.runtime import Runtime
from carmatch.ui import server_status
from carmatch.ui.common import client_address, user_errors


def unlocked(runtime: Runtime, stored: str | None) -> bool:
    """True when the session's stored password is the admin's (never true when no password is set)."""
    return admin_enabled(runtime.settings) and bool(stored) and is_admin(runtime.settings, stored)


def build(runtime: Runtime, session_password: gr.State) -> None:
    """Lay out the panel (hidden) and show it whenever the session is unlocked."""
    with gr.Accordion("Server status (admin)", open=True, visible=False, elem_id="server-panel") as panel:
        text = gr.Markdown(elem_id="server-status")
        with gr.Row():
            refresh = gr.Button("Refresh", size="sm", elem_id="server-refresh")
            retry = gr.Button("Retry loading the model", size="sm", visible=False, elem_id="server-retry")

    def view(stored: str) -> tuple[Any, Any, Any]:
        if not unlocked(runtime, stored):
            return gr.update(visible=False), gr.update(value=""), gr.update(visible=False)
        failed = runtime.model_error() is not None
        return gr.update(visible=True), gr.update(value=server_status.admin_status(runtime)), gr.update(visible=failed)

    @user_errors
    def on_retry(stored: str, request: gr.Request) -> tuple[Any, Any, Any]:
        server_status.retry_model(runtime, stored, client_address(request))  # the unlock's rate-limited check
        return view(stored)

    outputs = [panel, text, retry]
    session_password.change(view, [session_password], outputs, api_visibility="private")
    refresh.click(view, [session_password], outputs, api_visibility="private")
    retry.click(on_retry, [session_password], outputs, api_visibility="private")
