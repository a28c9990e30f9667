"""The app when carmatch cannot open its data at start: a notice in place of the tabs, not a traceback.

A corrupt or truncated catalog, a catalog path that is a folder, a CARMATCH_HOME that is a file,
invalid settings: :func:`carmatch.runtime.open_runtime` logs the fault and returns it, and app.py
builds this page instead of the tabs. A visitor reads a plain notice with no server path; an admin
who unlocks (same password, same brute-force brake as the tabs) reads the whole message with its fix.
"""

from __future__ import annotations

import gradio as gr

from carmatch.access import UnlockThrottle, check_admin
from carmatch.errors import AccessDeniedError
from carmatch.startup import StartupFault
from carmatch.ui.common import UNLOCK_THROTTLE, client_address
from carmatch.ui.phrasing import as_text

PUBLIC_NOTICE = (
    "### Search is unavailable right now\n"
    "This site cannot open its collection of car photos, so nothing can be searched at the moment. "
    "Its administrator can see what is wrong and how to fix it; please try again later."
)
ADMIN_NOTE = "Administrators: unlock to see what is wrong and how to fix it. The same message is in the app's log."
NO_SETTINGS_NOTE = (
    "The settings could not be read, so the admin password cannot be checked here: "
    "the app's log says what is wrong and how to fix it."
)


def details(fault: StartupFault) -> str:
    """What an admin reads: the whole message with its fix (server paths included), as plain text."""
    return f"⚠️ {as_text(fault.error)}\n\nFix it, then restart the app."


def reveal(fault: StartupFault, throttle: UnlockThrottle, given: str | None, client: str) -> tuple[str, str]:
    """(the details, or nothing while locked; the access line) for an unlock attempt from ``client``."""
    if fault.settings is None:
        return "", NO_SETTINGS_NOTE
    try:
        check_admin(fault.settings, given, client, throttle)
    except AccessDeniedError as exc:
        return "", f"❌ {as_text(exc)}"
    return details(fault), "🔓 Unlocked for this browser session."


def build(fault: StartupFault, header: str, **blocks_options: object) -> gr.Blocks:
    """The whole app while ``fault`` stops carmatch: the Search tab's notice, and an Admin tab with the details."""
    with gr.Blocks(title="carmatch", **blocks_options) as demo:  # type: ignore[arg-type]
        gr.Markdown(header)
        with gr.Tab("Search", id="search"):
            gr.Markdown(PUBLIC_NOTICE, elem_id="search-status")
        with gr.Tab("Admin", id="admin"):
            with gr.Row(equal_height=True):
                password = gr.Textbox(
                    label="Admin password", type="password", scale=3, max_length=200, elem_id="fault-password"
                )
                button = gr.Button("Unlock", scale=1, elem_id="fault-unlock")
            access = gr.Markdown(ADMIN_NOTE if fault.settings is not None else NO_SETTINGS_NOTE, elem_id="fault-access")
            shown = gr.Markdown(elem_id="fault-details")

        def on_unlock(given: str, request: gr.Request) -> tuple[str, str, str]:
            text, note = reveal(fault, UNLOCK_THROTTLE, given, client_address(request))
            return text, note, ""

        for trigger in (button.click, password.submit):
            trigger(on_unlock, [password], [shown, access, password], api_visibility="private")
    return demo
