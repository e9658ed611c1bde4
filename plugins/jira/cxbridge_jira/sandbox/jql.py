"""A safe parser for the subset of JQL the emulator answers.

Grammar (keywords case-insensitive)::

    query   := [or] [ORDER BY field [ASC|DESC] {, field [ASC|DESC]}]
    or      := and {OR and}
    and     := not {AND not}
    not     := NOT not | "(" or ")" | clause
    clause  := field op value | field [NOT] IN "(" value {, value} ")" | field IS [NOT] (EMPTY|NULL)
    op      := = | != | > | >= | < | <=
    field   := word | "quoted name" | cf[10100] | issue.property[key].path
    value   := word | "quoted" | 'quoted' | now() | currentUser() | EMPTY

The parser never evaluates anything: it builds a small tree that the model interprets. Errors carry Jira's
wording (``Error in the JQL Query: ...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

MAX_JQL_LENGTH = 10_000
MAX_ORDER_FIELDS = 7

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|>=|<=|!~|=|>|<|~)
      | (?P<punct>[(),])
      | (?P<word>[^\s"'(),=!<>~]+(?:\(\))?)
    )""",
    re.VERBOSE,
)

KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}


class JqlError(ValueError):
    """The JQL is malformed or uses something the emulator does not answer; ``message`` is Jira's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Token:
    """One lexical token: its kind, text (unquoted for strings) and position."""

    kind: str  # string, op, punct, word, end
    text: str
    pos: int

    @property
    def keyword(self) -> str | None:
        """The lower-cased JQL keyword this word is, or None."""
        if self.kind == "word" and self.text.lower() in KEYWORDS:
            return self.text.lower()
        return None


@dataclass(frozen=True)
class Func:
    """A JQL function call without arguments (``now()``, ``currentUser()``)."""

    name: str


@dataclass(frozen=True)
class Empty:
    """The EMPTY / NULL keyword."""


Value = str | Func | Empty


@dataclass(frozen=True)
class Clause:
    """``field op value(s)``; op is one of = != > >= < <= in not in is is not."""

    field: str
    op: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class And:
    """All of the items hold."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any of the items holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The item does not hold."""

    item: Node


Node = Clause | And | Or | Not


@dataclass
class Query:
    """A parsed JQL query: an optional restriction and the sort order as (field, descending) pairs."""

    where: Node | None
    order: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def bounded(self) -> bool:
        """Jira Cloud's /search/jql needs a search restriction; ordering alone is unbounded."""
        return self.where is not None


def tokenize(text: str) -> list[Token]:
    """Split JQL into tokens; raises JqlError on a character that cannot start a token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise JqlError(
                f"Error in the JQL Query: The character '{text[pos:].strip()[:1]}' is a reserved "
                f"JQL character. You must enclose it in a string or use the escape '\\u' "
                f"(line 1, character {pos + 1})."
            )
        kind = m.lastgroup or "word"
        raw = m.group(kind)
        value = raw
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
        tokens.append(Token(kind, value, m.start(kind)))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect_keyword(self, word: str) -> None:
        if self.tok.keyword != word:
            self.fail(f"Expecting '{word.upper()}'")
        self.take()

    def fail(self, what: str) -> None:
        if self.tok.kind == "end":
            raise JqlError(f"Error in the JQL Query: {what} before the end of the query.")
        raise JqlError(
            f"Error in the JQL Query: {what} but got '{self.tok.text}'. (line 1, character {self.tok.pos + 1})"
        )

    def parse(self) -> Query:
        where: Node | None = None
        if self.tok.kind != "end" and self.tok.keyword != "order":
            where = self.parse_or()
        order: list[tuple[str, bool]] = []
        if self.tok.keyword == "order":
            self.take()
            self.expect_keyword("by")
            while True:
                name = self.parse_field()
                desc = False
                if self.tok.keyword in {"asc", "desc"}:
                    desc = self.take().keyword == "desc"
                order.append((name, desc))
                if self.tok.kind == "punct" and self.tok.text == ",":
                    self.take()
                    continue
                break
            if len(order) > MAX_ORDER_FIELDS:
                raise JqlError("Error in the JQL Query: The ORDER BY clause can contain a maximum of 7 fields.")
        if self.tok.kind != "end":
            self.fail("Expecting either 'OR' or 'AND'")
        return Query(where, order)

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.tok.keyword == "or":
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.tok.keyword == "and":
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_not(self) -> Node:
        if self.tok.keyword == "not":
            self.take()
            return Not(self.parse_not())
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.take()
            node = self.parse_or()
            if not (self.tok.kind == "punct" and self.tok.text == ")"):
                self.fail("Expecting ')'")
            self.take()
            return node
        return self.parse_clause()

    def parse_field(self) -> str:
        token = self.tok
        if token.kind == "string" or (token.kind == "word" and token.keyword is None):
            self.take()
            return token.text
        self.fail("Expecting a field name")
        raise AssertionError("unreachable")  # pragma: no cover

    def parse_value(self) -> Value:
        token = self.tok
        if token.kind == "string":
            self.take()
            return token.text
        if token.kind == "word":
            if token.keyword in {"empty", "null"}:
                self.take()
                return Empty()
            if token.keyword is not None:
                self.fail("Expecting a value")
            self.take()
            if token.text.endswith("()"):
                return Func(token.text[:-2].lower())
            return token.text
        self.fail("Expecting either a value, list or function")
        raise AssertionError("unreachable")  # pragma: no cover

    def parse_clause(self) -> Clause:
        name = self.parse_field()
        token = self.tok
        if token.kind == "op":
            self.take()
            if token.text in {"~", "!~"}:
                raise JqlError(f"Error in the JQL Query: the sandbox does not answer the operator '{token.text}'.")
            return Clause(name, token.text, (self.parse_value(),))
        if token.keyword == "not":
            self.take()
            self.expect_keyword("in")
            return Clause(name, "not in", self.parse_list())
        if token.keyword == "in":
            self.take()
            return Clause(name, "in", self.parse_list())
        if token.keyword == "is":
            self.take()
            op = "is"
            if self.tok.keyword == "not":
                self.take()
                op = "is not"
            if self.tok.keyword not in {"empty", "null"}:
                self.fail("Expecting 'EMPTY' or 'NULL'")
            self.take()
            return Clause(name, op, (Empty(),))
        self.fail("Expecting operator")
        raise AssertionError("unreachable")  # pragma: no cover

    def parse_list(self) -> tuple[Value, ...]:
        if not (self.tok.kind == "punct" and self.tok.text == "("):
            self.fail("Expecting '('")
        self.take()
        values = [self.parse_value()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.take()
            values.append(self.parse_value())
        if not (self.tok.kind == "punct" and self.tok.text == ")"):
            self.fail("Expecting ')'")
        self.take()
        return tuple(values)


def parse(text: str) -> Query:
    """Parse a JQL string (empty means no restriction)."""
    if len(text) > MAX_JQL_LENGTH:
        raise JqlError("Error in the JQL Query: The query is too long.")
    return _Parser(text or "").parse()


_RELATIVE = re.compile(r"^([+-]?)((?:\d+[wdhm]\s*)+)$")
_ABSOLUTE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?$")


def parse_date(value: str, now: float) -> float:
    """A JQL date value as epoch seconds: ``yyyy-MM-dd[ HH:mm]``, ``yyyy/MM/dd[ HH:mm]`` (UTC, the
    sandbox users' time zone), or relative to now (``-5m``, ``-1d``, ``-2w 3d``)."""
    text = value.strip()
    m = _RELATIVE.match(text)
    if m:
        seconds = 0
        for amount, unit in re.findall(r"(\d+)([wdhm])", m[2]):
            seconds += int(amount) * {"w": 604800, "d": 86400, "h": 3600, "m": 60}[unit]
        return now - seconds if m[1] == "-" else now + seconds
    m = _ABSOLUTE.match(text)
    if m:
        try:
            dt = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4] or 0), int(m[5] or 0), tzinfo=UTC)
        except ValueError:
            pass
        else:
            return dt.timestamp()
    raise JqlError(
        f"Date value '{value}' for field is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
        "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
    )


def start_of_day(now: float) -> float:
    """Midnight UTC of the day holding ``now``."""
    dt = datetime.fromtimestamp(now, UTC)
    return (
        dt - timedelta(hours=dt.hour, minutes=dt.minute, seconds=dt.second, microseconds=dt.microsecond)
    ).timestamp()
