"""Translate Kestra's Pebble template syntax into Jinja source that our sandboxed environment compiles.

Pebble and Jinja share their delimiters but not their expression grammar: Pebble has `??`, `???`, `? :`,
`contains`, `equals`, `isIn`, `..`, a `~` that binds tighter than filters, a `not` that binds tighter than
comparisons, and 0-based `loop.index`. Rather than patch Jinja's parser, every tag is tokenized and parsed
here with Pebble's operator precedences, then re-emitted as fully parenthesized Jinja. Operators Jinja lacks
become calls to `__pebble_*` markers that the code generator in `expressions.py` compiles into direct calls on
the environment (lazily, for the coalescing operators and the `defined` test).

The emitted source keeps every newline of the original at the same line, so Jinja's line numbers are the
user's line numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.core.errors import ExpressionError

#: Binary operators and Pebble's precedence for each (io.pebbletemplates CoreExtension + Kestra's Extension).
_BINARY_PRECEDENCE: dict[str, int] = {
    "or": 10,
    "and": 15,
    "is": 20,
    "contains": 20,
    "isIn": 20,
    "isNotIn": 20,
    "==": 30,
    "!=": 30,
    "<": 30,
    ">": 30,
    "<=": 30,
    ">=": 30,
    "equals": 30,
    "+": 40,
    "-": 40,
    "*": 60,
    "/": 60,
    "%": 60,
    "|": 100,
    "~": 110,
    "..": 120,
    "??": 120,
    "???": 120,
}
_WORD_OPERATORS = frozenset({"or", "and", "is", "contains", "isIn", "isNotIn", "equals"})
_UNARY_PRECEDENCE = 500
#: Names Jinja gives a meaning of its own: a template variable with one of these names is looked up explicitly.
_JINJA_RESERVED = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "self", "caller", "varargs", "kwargs", "super", "recursive"}
)
_MARKER_PREFIX = "__pebble_"

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?P<long>[lL](?![A-Za-z0-9_]))?
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>\?\?\?|\?\?|==|!=|<=|>=|\.\.|[<>+\-*/%~|?:.,()\[\]{}=])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", "'": "'", '"': '"', "/": "/"}
_OPEN_RE = re.compile(r"\{\{|\{%|\{#")
_ENDRAW_RE = re.compile(r"\{%(-?)\s*end(?:raw|verbatim)\s*(-?)%\}")


@dataclass(frozen=True)
class Tag:
    """One `{{ }}` or `{% %}` of the original template, kept to point error messages at it."""

    line: int  #: 1-based line of the opening delimiter
    end_line: int
    text: str


@dataclass(frozen=True)
class Translation:
    """The Jinja source for a Pebble template, plus what error reporting and typed rendering need."""

    source: str
    tags: tuple[Tag, ...]
    #: Jinja source of the expression when the template is a single `{{ }}` with only whitespace around it.
    expression: str | None


@dataclass(frozen=True)
class _Token:
    kind: str  #: "name", "number", "string", "op" or "end"
    value: str
    literal: object = None  #: parsed value of a number or string token
    offset: int = 0  #: position in the template


def translate(template: str) -> Translation:
    """Translate a Pebble template into Jinja source, raising ExpressionError on a syntax error."""
    return _Translator(template).run()


def _syntax_error(template: str, tag: str, line: int, message: str) -> ExpressionError:
    return ExpressionError(f"Syntax error in `{tag}` at line {line}: {message}", expression=template)


@dataclass
class _Translator:
    template: str
    out: list[str] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    prints: list[str] = field(default_factory=list)
    other_content: bool = False

    def run(self) -> Translation:
        text = self.template
        pos, trim_next = 0, False
        while True:
            match = _OPEN_RE.search(text, pos)
            chunk = text[pos : match.start() if match else len(text)]
            left_trim = bool(match) and text.startswith("-", match.end() if match else 0)
            self._text(chunk, lstrip=trim_next, rstrip=left_trim)
            if match is None:
                break
            start = match.end() + (1 if left_trim else 0)
            if match.group() == "{#":
                pos, trim_next = self._comment(match.start(), start)
            elif match.group() == "{{":
                pos, trim_next = self._print(match.start(), start)
            else:
                pos, trim_next = self._statement(match.start(), start)
        only_one_print = len(self.prints) == 1 and not self.other_content
        return Translation("".join(self.out), tuple(self.tags), self.prints[0] if only_one_print else None)

    def _line(self, offset: int) -> int:
        return self.template.count("\n", 0, offset) + 1

    def _text(self, chunk: str, *, lstrip: bool, rstrip: bool) -> None:
        kept = chunk.lstrip() if lstrip else chunk
        kept = kept.rstrip() if rstrip else kept
        removed_newlines = chunk.count("\n") - kept.count("\n")
        if kept.strip():
            self.other_content = True
        if "{" in kept or "\r" in kept:
            # A literal brace next to an emitted tag could form a new delimiter, and Jinja would turn "\r\n" in
            # plain text into "\n": such text becomes a string literal instead.
            self.out.append("{{ " + repr(kept) + "\n" * kept.count("\n") + " }}")
        else:
            self.out.append(kept)
        if removed_newlines:
            self.out.append("{#" + "\n" * removed_newlines + "#}")

    def _comment(self, open_at: int, start: int) -> tuple[int, bool]:
        close = self.template.find("#}", start)
        if close < 0:
            line = self._line(open_at)
            raise _syntax_error(self.template, self.template[open_at : open_at + 40], line, "unclosed comment")
        self.out.append("{#" + "\n" * self.template.count("\n", open_at, close) + "#}")
        return close + 2, close > start and self.template[close - 1] == "-"

    def _lex_tag(self, open_at: int, start: int, closer: str) -> tuple[list[_Token], int, bool, str, int]:
        """Tokenize a tag body up to its closing delimiter at bracket depth 0 (strings may contain it)."""
        text, pos, depth, tokens = self.template, start, 0, []
        line = self._line(open_at)
        while True:
            if depth == 0:
                stripped = pos
                while stripped < len(text) and text[stripped].isspace():
                    stripped += 1
                for trim, end_mark in ((True, "-" + closer), (False, closer)):
                    if text.startswith(end_mark, stripped):
                        end = stripped + len(end_mark)
                        tokens.append(_Token("end", "", offset=stripped))
                        return tokens, end, trim, text[open_at:end], line
            match = _TOKEN_RE.match(text, pos)
            if match is None:
                snippet = text[open_at : min(len(text), pos + 10)]
                if pos >= len(text):
                    raise _syntax_error(self.template, snippet, line, f"missing closing `{closer}`")
                raise _syntax_error(self.template, snippet, line, f"unexpected character {text[pos]!r}")
            pos = match.end()
            if match.lastgroup == "ws":
                continue
            tokens.append(self._token(match, line, open_at))
            value = match.group()
            depth += value in ("(", "[", "{")
            depth -= value in (")", "]", "}")
            depth = max(depth, 0)

    def _token(self, match: re.Match[str], line: int, open_at: int) -> _Token:
        kind = match.lastgroup or ""
        raw = match.group()
        if match.group("number") is not None:
            number = match.group("number")
            is_float = any(c in number for c in ".eE")
            return _Token("number", raw, float(number) if is_float else int(number), match.start())
        if kind == "string":
            return _Token("string", raw, _unescape(raw[1:-1]), match.start())
        if kind == "name" and raw.startswith(_MARKER_PREFIX):
            tag = self.template[open_at : match.end()]
            raise _syntax_error(self.template, tag, line, f"the name {raw!r} is reserved")
        return _Token(kind, raw, None, match.start())

    def _print(self, open_at: int, start: int) -> tuple[int, bool]:
        tokens, end, trim, source, line = self._lex_tag(open_at, start, "}}")
        parser = _Parser(tokens, self.template, source, line)
        if tokens[0].kind == "end":
            raise parser.error("empty expression")
        expression = parser.expression()
        parser.expect_end()
        self.tags.append(Tag(line, line + source.count("\n"), source))
        self.prints.append(expression)
        self.out.append("{{ " + expression + "\n" * source.count("\n") + " }}")
        return end, trim

    def _statement(self, open_at: int, start: int) -> tuple[int, bool]:
        tokens, end, trim, source, line = self._lex_tag(open_at, start, "%}")
        self.other_content = True
        parser = _Parser(tokens, self.template, source, line)
        if tokens[0].kind == "name" and tokens[0].value in ("raw", "verbatim"):
            parser.pos = 1
            parser.expect_end()
            return self._raw(open_at, end, trim, source, line)
        body = parser.statement()
        self.tags.append(Tag(line, line + source.count("\n"), source))
        self.out.append("{% " + body + "\n" * source.count("\n") + " %}")
        return end, trim

    def _raw(self, open_at: int, start: int, trim_start: bool, source: str, line: int) -> tuple[int, bool]:
        close = _ENDRAW_RE.search(self.template, start)
        if close is None:
            raise _syntax_error(self.template, source, line, "missing `{% endraw %}`")
        self.out.append("{#" + "\n" * source.count("\n") + "#}")
        self._text(self.template[start : close.start()], lstrip=trim_start, rstrip=bool(close.group(1)))
        self.out.append("{#" + "\n" * close.group().count("\n") + "#}")
        return close.end(), bool(close.group(2))


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


@dataclass
class _Parser:
    """Precedence-climbing parser over one tag's tokens, emitting Jinja expression source."""

    tokens: list[_Token]
    template: str
    source: str  #: the whole tag, for error messages
    line: int
    pos: int = 0

    # -- token helpers --------------------------------------------------------------------------------
    def error(self, message: str) -> ExpressionError:
        return _syntax_error(self.template, self.source, self.line, message)

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> _Token:
        token = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def at(self, value: str, kind: str | None = None) -> bool:
        token = self.peek()
        return token.value == value and token.kind in ((kind,) if kind else ("op", "name"))

    def expect(self, value: str) -> _Token:
        token = self.next()
        if token.value != value or token.kind not in ("op", "name"):
            raise self.error(f"expected `{value}` but found {_describe(token)}")
        return token

    def expect_name(self) -> str:
        token = self.next()
        if token.kind != "name":
            raise self.error(f"expected a name but found {_describe(token)}")
        return token.value

    def expect_end(self) -> None:
        if self.peek().kind != "end":
            raise self.error(f"did not expect {_describe(self.peek())}")

    # -- statements -----------------------------------------------------------------------------------
    def statement(self) -> str:
        tag = self.expect_name()
        if tag in ("if", "elseif", "elif"):
            condition = self.expression()
            self.expect_end()
            return f"{'if' if tag == 'if' else 'elif'} __pebble_truthy({condition})"
        if tag in ("else", "endif", "endfor", "endmacro", "endfilter"):
            self.expect_end()
            return tag
        if tag == "for":
            variable = self.target()
            self.expect("in")
            iterable = self.expression()
            self.expect_end()
            return f"for {variable} in __pebble_iter({iterable})"
        if tag == "set":
            variable = self.target()
            self.expect("=")
            value = self.expression()
            self.expect_end()
            return f"set {variable} = {value}"
        if tag == "macro":
            return self.macro()
        if tag == "filter":
            chain = [self.filter_call()]
            while self.at("|", "op"):
                self.next()
                chain.append(self.filter_call())
            self.expect_end()
            return "filter " + "|".join(chain)
        raise self.error(f"the `{tag}` tag is not supported")

    def target(self) -> str:
        name = self.expect_name()
        if name in _JINJA_RESERVED or name in ("true", "false", "null", "none", "loop"):
            raise self.error(f"`{name}` cannot be used as a variable name here")
        return name

    def macro(self) -> str:
        name = self.target()
        self.expect("(")
        params: list[str] = []
        while not self.at(")", "op"):
            param = self.target()
            if self.at("=", "op"):
                self.next()
                param += "=" + self.expression()
            params.append(param)
            if not self.at(")", "op"):
                self.expect(",")
        self.expect(")")
        self.expect_end()
        return f"macro {name}({', '.join(params)})"

    def filter_call(self) -> str:
        name = self.expect_name()
        return name + (self.arguments() if self.at("(", "op") else "")

    # -- expressions ----------------------------------------------------------------------------------
    def expression(self, min_precedence: int = 0) -> str:
        token = self.peek()
        if (token.kind == "name" and token.value == "not") or (token.kind == "op" and token.value in ("-", "+")):
            self.next()
            operand = self.expression(_UNARY_PRECEDENCE)
            left = f"(not __pebble_truthy({operand}))" if token.value == "not" else f"({token.value}{operand})"
        else:
            left = self.postfix(self.primary())
        while True:
            operator = self.binary_operator()
            if operator is None or _BINARY_PRECEDENCE[operator] < min_precedence:
                break
            self.next()
            if operator == "is":
                left = self.test(left)
            elif operator == "|":
                left = self.filter(left)
            else:
                right = self.expression(_BINARY_PRECEDENCE[operator] + 1)
                left = _binary(operator, left, right)
        if min_precedence == 0 and self.at("?", "op"):
            self.next()
            then = self.expression()
            self.expect(":")
            otherwise = self.expression()
            left = f"({then} if __pebble_truthy({left}) else {otherwise})"
        return left

    def binary_operator(self) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.value in _BINARY_PRECEDENCE:
            return token.value
        if token.kind == "name" and token.value in _WORD_OPERATORS:
            return token.value
        return None

    def test(self, left: str) -> str:
        negated = self.at("not", "name")
        if negated:
            self.next()
        name = self.expect_name()
        arguments = self.arguments() if self.at("(", "op") else ""
        if name == "defined":
            return f"(not __pebble_defined({left}))" if negated else f"__pebble_defined({left})"
        if arguments:
            raise self.error(f"the `{name}` test takes no arguments")
        return f"({left} is {'not ' if negated else ''}{name})"

    def filter(self, left: str) -> str:
        name = self.expect_name()
        arguments = self.arguments() if self.at("(", "op") else ""
        if name == "default":
            inner = arguments[1:-1] if arguments else "none"
            return f"__pebble_default({left}, {inner})"
        return f"({left}|{name}{arguments})"

    def arguments(self) -> str:
        self.expect("(")
        parts: list[str] = []
        while not self.at(")", "op"):
            if self.peek().kind == "name" and self.peek(1).kind == "op" and self.peek(1).value == "=":
                name = self.expect_name()
                self.next()
                parts.append(f"{name}={self.expression()}")
            else:
                parts.append(self.expression())
            if not self.at(")", "op"):
                self.expect(",")
        self.expect(")")
        return "(" + ", ".join(parts) + ")"

    def primary(self) -> str:
        token = self.next()
        if token.kind in ("number", "string"):
            return repr(token.literal)
        if token.kind == "name":
            if token.value in ("true", "false"):
                return token.value
            if token.value in ("null", "none"):
                return "none"
            if self.at("(", "op"):
                return self.call(token.value)
            if token.value in _JINJA_RESERVED:
                return f"__pebble_var({token.value!r})"
            return token.value
        if token.kind == "op" and token.value == "(":
            inner = self.expression()
            self.expect(")")
            return f"({inner})"
        if token.kind == "op" and token.value == "[":
            return "[" + ", ".join(self.items("]", self.expression)) + "]"
        if token.kind == "op" and token.value == "{":
            return "{" + ", ".join(self.items("}", self.map_entry)) + " }"
        raise self.error(f"did not expect {_describe(token)}")

    def call(self, name: str) -> str:
        if name in _JINJA_RESERVED:
            raise self.error(f"`{name}` is not a function")
        return name + self.arguments()

    def items(self, closer: str, parse_item: Callable[[], str]) -> list[str]:
        items: list[str] = []
        while not self.at(closer, "op"):
            items.append(parse_item())
            if not self.at(closer, "op"):
                self.expect(",")
        self.expect(closer)
        return items

    def map_entry(self) -> str:
        key = self.expression()
        self.expect(":")
        return f"{key}: {self.expression()}"

    def postfix(self, node: str) -> str:
        while True:
            if self.at(".", "op"):
                self.next()
                token = self.next()
                if token.kind == "number" and isinstance(token.literal, int):
                    node = f"{node}[{token.literal}]"
                    continue
                if token.kind != "name":
                    raise self.error(f"expected an attribute name after `.` but found {_describe(token)}")
                attribute = _LOOP_ATTRIBUTES.get(token.value, token.value) if node == "loop" else token.value
                if self.at("(", "op"):
                    node = f"{node}.{attribute}{self.arguments()}"
                elif attribute in _JINJA_RESERVED or attribute in ("true", "false", "none", "null"):
                    node = f"{node}[{attribute!r}]"
                else:
                    node = f"{node}.{attribute}"
            elif self.at("[", "op"):
                self.next()
                index = self.expression()
                self.expect("]")
                node = f"{node}[{index}]"
            else:
                return node


#: Pebble's `loop.index` is 0-based and `loop.revindex` counts the items left after this one.
_LOOP_ATTRIBUTES = {"index": "index0", "revindex": "revindex0"}


def _binary(operator: str, left: str, right: str) -> str:
    match operator:
        case "and" | "or":
            return f"(__pebble_truthy({left}) {operator} __pebble_truthy({right}))"
        case "equals":
            return f"({left} == {right})"
        case "~":
            return f"__pebble_concat({left}, {right})"
        case "..":
            return f"__pebble_range({left}, {right})"
        case "??":
            return f"__pebble_coalesce({left}, {right})"
        case "???":
            return f"__pebble_ucoalesce({left}, {right})"
        case "contains":
            return f"__pebble_contains({left}, {right})"
        case "isIn":
            return f"__pebble_isin({left}, {right})"
        case "isNotIn":
            return f"(not __pebble_isin({left}, {right}))"
        case _:
            return f"({left} {operator} {right})"


def _describe(token: _Token) -> str:
    return "the end of the tag" if token.kind == "end" else f"`{token.value}`"
