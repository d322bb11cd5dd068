"""Driving the console's CodeMirror flow editor from Playwright as a person would: typing into its content,
and reading what it holds through CodeMirror's own API (the page shows only the lines on screen)."""

from __future__ import annotations

from typing import Any

CONTENT = "#flow-source .cm-content"

_VIEW = (
    "(await import('/ui/static/vendor/codemirror.js'))"
    ".EditorView.findFromDOM(document.querySelector('#flow-source .cm-editor'))"
)


#: A paste event carrying the text, as the browser sends one for Ctrl+V (headless Chromium has no clipboard).
_PASTE = """([selector, text]) => {
    const data = new DataTransfer();
    data.setData("text/plain", text);
    document.querySelector(selector).dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
}"""


def set_source(page: Any, text: str) -> None:
    """Replace the whole text as a person does: select all, paste (no auto-indent, no closing brackets)."""
    page.click(CONTENT)
    page.keyboard.press("Control+a")
    page.evaluate(_PASTE, [CONTENT, text])


def source(page: Any) -> str:
    return str(page.evaluate(f"async () => {_VIEW}.state.doc.toString()"))


def caret_line(page: Any) -> int:
    """The 1-based line the caret is on."""
    script = f"async () => {{ const v = {_VIEW}; return v.state.doc.lineAt(v.state.selection.main.head).number; }}"
    return int(page.evaluate(script))


def scroll_top(page: Any) -> float:
    return float(page.evaluate("document.querySelector('#flow-source .cm-scroller').scrollTop"))


def completions(page: Any) -> list[str]:
    """The labels of the completion list on screen (waits for it)."""
    page.wait_for_selector(".cm-tooltip-autocomplete li")
    # CodeMirror ignores Enter on a list open for less than its interactionDelay (75 ms): a person is never that quick.
    page.wait_for_timeout(150)
    return [str(x) for x in page.locator(".cm-tooltip-autocomplete li .cm-completionLabel").all_inner_texts()]
