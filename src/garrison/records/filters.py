"""The filter and access-rule language, parsed into a small syntax tree.

Grammar (whitespace between tokens is free)::

    expr       := and_expr ( "||" and_expr )*
    and_expr   := unary ( "&&" unary )*
    unary      := "(" expr ")" | comparison
    comparison := operand OP operand
                | operand "in" "(" literal ( "," literal )* ")"
    OP         := "=" | "!=" | ">" | ">=" | "<" | "<=" | "~" | "!~"
    operand    := field | macro | literal
    field      := [A-Za-z_][A-Za-z0-9_]*
    macro      := "@auth.id" | "@auth.role" | "@now"
    literal    := 'string' | "string" | number | true | false | null

``~`` is "contains" (``!~`` its negation); ``= null`` / ``!= null`` test for null. Strings
take backslash escapes for their quote and backslash. The parser never produces SQL: the
compiler in ``records.sql`` turns the tree into parameterised SQLAlchemy expressions, so no
input ever becomes SQL text. Every error carries the 0-based character position.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TypeAlias

MAX_LENGTH = 4096
MAX_DEPTH = 32
MAX_TERMS = 100
MAX_IN_VALUES = 200
OPERATORS = ("=", "!=", ">", ">=", "<", "<=", "~", "!~")
MACROS = frozenset({"@auth.id", "@auth.role", "@now"})
KEYWORDS = {"true": True, "false": False, "null": None}


class FilterError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


LiteralValue: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True)
class Field:
    name: str
    pos: int


@dataclass(frozen=True)
class Macro:
    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    value: LiteralValue
    pos: int


Operand: TypeAlias = Field | Macro | Literal


@dataclass(frozen=True)
class Compare:
    op: str
    left: Operand
    right: Operand
    pos: int


@dataclass(frozen=True)
class In:
    operand: Operand
    values: tuple[Literal, ...]
    pos: int


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node: TypeAlias = Compare | In | And | Or


@dataclass(frozen=True)
class Token:
    kind: str  # "op", "and", "or", "(", ")", ",", "field", "macro", "string", "number", "word"
    text: str
    pos: int
    value: LiteralValue = None


_INT64 = (-(2**63), 2**63 - 1)
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<and>&&)
  | (?P<or>\|\|)
  | (?P<op>!=|>=|<=|!~|=|>|<|~)
  | (?P<paren>[(),])
  | (?P<macro>@[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<number>-?(?:\d+\.\d+|\d+)(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    """,
    re.VERBOSE,
)


def _unescape(raw: str, pos: int) -> str:
    body = raw[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            if index + 1 >= len(body) or body[index + 1] not in ("\\", "'", '"'):
                raise FilterError("unknown escape in string", pos + index + 1)
            out.append(body[index + 1])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _number(raw: str, pos: int) -> int | float:
    """A numeric literal's value. Only finite doubles and 64-bit integers are values: an
    infinity would reach the driver as ``inf`` (rendered as an identifier) and a wider
    integer has no column to compare with."""
    if any(c in raw for c in ".eE"):
        value = float(raw)
        if not math.isfinite(value):
            raise FilterError("number out of range (not a finite double)", pos)
        return value
    if len(raw.lstrip("-")) > 19 or not _INT64[0] <= int(raw) <= _INT64[1]:
        raise FilterError("integer out of the 64-bit range", pos)
    return int(raw)


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise FilterError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH)
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] in "'\"":
                raise FilterError("unterminated string", pos)
            raise FilterError(f"unexpected character {text[pos]!r}", pos)
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "string":
            tokens.append(Token("string", raw, pos, _unescape(raw, pos)))
        elif kind == "number":
            tokens.append(Token("number", raw, pos, _number(raw, pos)))
        elif kind == "paren":
            tokens.append(Token(raw, raw, pos))
        elif kind != "ws":
            tokens.append(Token(kind, raw, pos))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.terms = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def end_pos(self) -> int:
        return len(self.text)

    def take(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token is None or token.kind != kind:
            found = f"{token.text!r}" if token else "the end"
            where = token.pos if token else self.end_pos()
            raise FilterError(f"expected {what}, found {found}", where)
        self.index += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise FilterError("empty expression", 0)
        node = self.expr(0)
        extra = self.peek()
        if extra is not None:
            raise FilterError(f"unexpected {extra.text!r}", extra.pos)
        return node

    def expr(self, depth: int) -> Node:
        items = [self.and_expr(depth)]
        while (token := self.peek()) is not None and token.kind == "or":
            self.index += 1
            items.append(self.and_expr(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while (token := self.peek()) is not None and token.kind == "and":
            self.index += 1
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Node:
        token = self.peek()
        if token is not None and token.kind == "(":
            if depth >= MAX_DEPTH:
                raise FilterError(f"nesting deeper than {MAX_DEPTH}", token.pos)
            self.index += 1
            node = self.expr(depth + 1)
            self.take(")", "')'")
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise FilterError(f"more than {MAX_TERMS} comparisons", left.pos)
        token = self.peek()
        if token is not None and token.kind == "word" and token.text == "in":
            self.index += 1
            self.take("(", "'(' after in")
            values = [self.literal()]
            while (sep := self.peek()) is not None and sep.kind == ",":
                self.index += 1
                values.append(self.literal())
                if len(values) > MAX_IN_VALUES:
                    raise FilterError(f"more than {MAX_IN_VALUES} values in a list", sep.pos)
            self.take(")", "')' or ','")
            return In(left, tuple(values), token.pos)
        op = self.take("op", "an operator (= != > >= < <= ~ !~ in)")
        right = self.operand()
        return Compare(op.text, left, right, op.pos)

    def operand(self) -> Operand:
        token = self.peek()
        if token is None:
            raise FilterError("expected a field, value or @macro, found the end", self.end_pos())
        if token.kind == "macro":
            if token.text not in MACROS:
                raise FilterError(f"unknown macro {token.text!r}", token.pos)
            self.index += 1
            return Macro(token.text, token.pos)
        if token.kind == "word" and token.text not in KEYWORDS:
            if token.text == "in":
                raise FilterError("expected a field, value or @macro, found 'in'", token.pos)
            self.index += 1
            return Field(token.text, token.pos)
        if token.kind not in ("string", "number", "word"):
            raise FilterError(f"expected a field, value or @macro, found {token.text!r}", token.pos)
        return self.literal()

    def literal(self) -> Literal:
        token = self.peek()
        if token is None:
            raise FilterError("expected a value, found the end", self.end_pos())
        if token.kind in ("string", "number"):
            self.index += 1
            return Literal(token.value, token.pos)
        if token.kind == "word" and token.text in KEYWORDS:
            self.index += 1
            return Literal(KEYWORDS[token.text], token.pos)
        raise FilterError(f"expected a value, found {token.text!r}", token.pos)


def parse(text: str) -> Node:
    """Parse a filter or rule expression; raises ``FilterError`` with the position."""
    return _Parser(text).parse()


def fields_of(node: Node) -> set[str]:
    """Every field name the expression mentions (to check them against a schema)."""
    names: set[str] = set()

    def visit_operand(operand: Operand) -> None:
        if isinstance(operand, Field):
            names.add(operand.name)

    def visit(item: Node) -> None:
        if isinstance(item, (And, Or)):
            for child in item.items:
                visit(child)
        elif isinstance(item, In):
            visit_operand(item.operand)
        else:
            visit_operand(item.left)
            visit_operand(item.right)

    visit(node)
    return names
