"""Regular expressions written by flow authors or API callers, matched in linear time by RE2.

Python's `re` backtracks: an input `validator` of `(a|a)*` held the API for 24 s on a 28-character value, and
no deadline can interrupt it. RE2 (PyPI `google-re2`) guarantees time linear in the text, at the price of
backreferences, lookaround and possessive quantifiers; a pattern using them is refused with a message that
says so (at deploy for validators and flow conditions). Kestra's own flows rarely need those features, and
none of its published examples or our conformance fixtures do.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import re2  # type: ignore[import-untyped, unused-ignore]  # PyPI google-re2

__all__ = ["Pattern", "RegexInvalid", "compile_pattern", "fullmatch", "search", "substitute"]

#: A compiled RE2 program (google-re2's `_Regexp`); typed loosely because the binding ships no stubs.
Pattern = Any

#: RE2 compiles a pattern into an automaton bounded by this memory; `((a{1,100}){1,100}){1,100}` is refused.
_MAX_PROGRAM_BYTES = 8 * 1024 * 1024
_MAX_CACHED_CHARS = 1000


class RegexInvalid(ValueError):
    """Raised when a pattern is not a regular expression RE2 can run; the message says why and what to change."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the error comes back to the caller; RE2 would also print it to stderr
    options.max_mem = _MAX_PROGRAM_BYTES
    return options


def compile_pattern(pattern: str) -> Pattern:
    """The RE2 program for `pattern`; RegexInvalid when RE2 cannot parse it (naming unsupported features)."""
    # Only short patterns are memoised: a template can build a new megabyte-long one on every render.
    return _compile_cached(pattern) if len(pattern) <= _MAX_CACHED_CHARS else _compile(pattern)


@functools.lru_cache(maxsize=1024)
def _compile_cached(pattern: str) -> Pattern:
    return _compile(pattern)


def _compile(pattern: str) -> Pattern:
    try:
        return re2.compile(pattern, _options())
    except re2.error as e:
        reason = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        shown = pattern if len(pattern) <= 200 else pattern[:197] + "..."
        raise RegexInvalid(f"invalid regular expression {shown!r}: {reason[:200]}{_hint(pattern)}") from None


def _hint(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error:
        return ""
    # Python's engine (and Java's) accept it: name what RE2 lacks, so the author knows what to rewrite.
    return (
        " (Chorus matches in linear time with RE2, which has no backreferences, lookahead or lookbehind, "
        "possessive quantifiers or atomic groups; use \\z for the end of the text)"
    )


def fullmatch(pattern: str, text: str) -> bool:
    """Whether the whole of `text` matches `pattern` (Java's `String.matches`)."""
    return compile_pattern(pattern).fullmatch(text) is not None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text`."""
    return compile_pattern(pattern).search(text) is not None


def substitute(pattern: str, replacement: str, text: str, check_size: Callable[[int], None]) -> str:
    """Kestra's regex `replace`: every match replaced, `$1` naming a group; `check_size` sees the growing size.

    The result is built match by match so an empty pattern or a group repeated in the replacement cannot
    allocate past the caller's cap before it is checked.
    """
    compiled = compile_pattern(pattern)
    template = replacement.replace("$", "\\")  # `$1` as Python's `\1`, as this filter has always read it
    parts: list[str] = []
    size = 0
    position = 0
    for match in compiled.finditer(text):
        start, end = match.span()
        piece = text[position:start] + match.expand(template)
        size += len(piece)
        check_size(size + len(text) - end)
        parts.append(piece)
        position = end
    parts.append(text[position:])
    return "".join(parts)
