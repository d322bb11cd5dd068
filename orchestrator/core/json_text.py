"""Reading JSON text that a caller sent, so that no body, input or value becomes a 500.

`json.loads` raises RecursionError on `[[[[...` thousands deep (its C scanner recurses once a level): that is
the sender's mistake, so `loads` turns it into `JsonTooDeep`, a ValueError, and a caller that treats every
unreadable text alike catches ValueError once. `nests_deeper_than` answers the same question without building
the value, for a body that another library (the MCP SDK) parses afterwards: the body is read once, not twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "JsonTooDeep", "loads", "nests_deeper_than"]

#: Deeper than any document a person or a tool writes, shallow enough that `json.loads` never recurses out of
#: its stack on a request's thread (Python's default limit is 1,000 frames, some of them the server's own).
MAX_DEPTH = 500

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)  # alternatives cannot overlap: linear, no backtracking
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonTooDeep(ValueError):
    """Raised when a JSON text nests too deeply to read."""

    def __init__(self) -> None:
        super().__init__("JSON nested too deeply to read")


def loads(text: str | bytes, *, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """`json.loads`, with RecursionError raised as `JsonTooDeep` (a ValueError, as any other unreadable text)."""
    try:
        return json.loads(text, parse_constant=parse_constant)
    except RecursionError as e:
        raise JsonTooDeep from e


def nests_deeper_than(body: bytes, depth: int = MAX_DEPTH) -> bool:
    """Whether the arrays and objects of `body` nest deeper than `depth`, brackets inside strings not counted.

    A scan, not a parse: text that is not JSON at all answers by its brackets alone (its reader reports it)."""
    if body.count(b"[") + body.count(b"{") <= depth:  # the common case: too few brackets to nest that deep
        return False
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", body))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > depth
