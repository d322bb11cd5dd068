"""Driving the console's CodeMirror flow editor from Playwright as a person would: typing into its content,
and reading what it holds through CodeMirror's own API (the page shows only the lines on screen)."""

from __future__ import annotations

from typing import Any

CONTENT = "#flow-source .cm-content"

_VIEW = (
    "(await import('/ui/static/vendor/codemirror.js'))"
    ".EditorView.findFromDOM(document.querySelector('#flow-source .cm-editor'))"
)


def set_source(page: Any, text: str) -> None:
    """Replace the whole text, as a paste over a select-all does (no auto-indent, no closing brackets)."""
    page.wait_for_selector(CONTENT)
    page.fill(CONTENT, text)


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
    return [str(x) for x in page.locator(".cm-tooltip-autocomplete li .cm-completionLabel").all_inner_texts()]
