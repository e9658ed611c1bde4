"""The handoff: Jinja2 templates that carry a ticket's whole context into Jira, Zendesk and HubSpot.

Templates live in the admin's folders first and the packaged defaults second, and are found by name. The
template's suffix says what it writes and so how values are escaped:

- ``*.md.j2``: Markdown (the Jira description). Every value is escaped so that a customer's words stay data:
  they can never become a heading, a link or a table.
- ``*.html.j2``: HTML (the HubSpot note), autoescaped.
- ``*.txt.j2``: plain text (the Jira summary, the Zendesk internal note), not escaped.

The environment is sandboxed (:class:`BoundedSandbox`, an ``ImmutableSandboxedEnvironment``) and undefined names are
errors. A render is bounded whatever it outputs: ``MAX_RENDER_SECONDS`` and ``MAX_OPERATIONS`` (calls, attribute
and item reads, operators and loop steps, each checked against the deadline), ``MAX_OUTPUT_CHARS`` of output, and
no single operation may build more than ``MAX_SIZE`` characters or items (``'x' * n``, ``[1] * n``, ``+``, ``~``,
``%``/``format`` widths, numbers passed to filters and to text or list methods). ``range`` is capped by Jinja2's
sandbox (``MAX_RANGE``). Policy conditions (``workflows/policy.py``) run in the same sandbox.
"""

from __future__ import annotations

import functools
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import jinja2.runtime
import jinja2.sandbox
import jinja2.visitor
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from .errors import TemplateError

MAX_OUTPUT_CHARS = 64 * 1024
MAX_RENDER_SECONDS = 2.0
MAX_OPERATIONS = 1_000_000
"""Calls, attribute and item reads, operators and loop steps one render (or one condition) may take."""
MAX_SIZE = 1_000_000
"""Characters or items one operation may build (``'x' * n``, ``[1] * n``, ``+``, ``~``, ``%``/``format`` widths,
padding such as ``center``), and the largest number a filter or a text or list method accepts as an argument."""
MAX_EXPONENT = 64
"""The largest exponent ``**`` accepts."""
MAX_INT_BITS = 4096
"""The largest integer (in bits) ``*`` may build."""
MAX_RANGE = jinja2.sandbox.MAX_RANGE
"""Jinja2's sandbox already refuses a ``range`` longer than this (100000); loops are also counted step by step."""

TEMPLATES = {
    "issue_summary": "issue_summary.txt.j2",
    "issue_description": "issue_description.md.j2",
    "helpdesk_note": "helpdesk_note.txt.j2",
    "crm_note": "crm_note.html.j2",
}
"""The escalation's templates, named by the role they write to: the tracker's issue, the helpdesk's ticket
note, the CRM's timeline note."""

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~=&:\"'])")
_MD_ESCAPES = {char: "\\" + char for char in "\\`*_{}[]()#+-.!|<>~=&:\"'"}


def _escape_char(match: re.Match[str]) -> str:
    """One Markdown special character, backslash-escaped (a dict lookup: cheaper than a ``\\1`` template)."""
    return _MD_ESCAPES[match.group()]


class MarkdownSafe(str):
    """A string that is already Markdown and must not be escaped again."""

    __slots__ = ()


def escape_markdown(value: str) -> str:
    """Backslash-escape every character Markdown could read as markup (CommonMark escapes any punctuation)."""
    text = _MD_SPECIAL.sub(_escape_char, value)
    # A value's own line breaks stay line breaks, but can't open a block (indented code, a list, a quote).
    return "\n".join(line.strip() for line in text.splitlines()) if "\n" in text else text


def default_template_dir() -> Path:
    """The packaged default templates."""
    try:
        path = Path(str(resources.files("cxbridge.templates")))
        if (path / TEMPLATES["issue_description"]).exists():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "templates"


def _md_finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, MarkdownSafe | Markup):
        return value
    if isinstance(value, bool | int | float):
        return value
    return escape_markdown(str(value))


def _txt_finalize(value: Any) -> Any:
    return "" if value is None else value


def _money(value: Any, currency: str | None = None) -> str:
    if value is None or value == "":
        return "unknown"
    try:
        from decimal import Decimal

        amount = Decimal(str(value))
    except Exception:
        return str(value)
    text = f"{amount:,.2f}".rstrip("0").rstrip(".") if amount != amount.to_integral() else f"{amount:,.0f}"
    return f"{text} {currency}" if currency else text


def _one_line(value: Any, limit: int = 255) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(value: Any) -> MarkdownSafe:
    """A block of customer text as a Markdown quote, every line escaped."""
    lines = str(value or "").strip().splitlines() or [""]
    return MarkdownSafe("\n".join("> " + _MD_SPECIAL.sub(_escape_char, line.strip()) for line in lines))


class Handoff:
    """Renders the handoff templates by name, admins' folders first."""

    def __init__(
        self,
        template_dirs: Sequence[Path] = (),
        *,
        max_output: int = MAX_OUTPUT_CHARS,
        max_seconds: float = MAX_RENDER_SECONDS,
        max_operations: int = MAX_OPERATIONS,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.template_dirs = [Path(p) for p in template_dirs]
        self.aliases = dict(aliases or {})
        """Template file -> an older name admins may have overridden it under (the plugins' ``template_aliases``):
        an admin's file with the older name is used when the admin's folders hold none with the new one."""
        search = [str(p) for p in template_dirs] + [str(default_template_dir())]
        loader = jinja2.FileSystemLoader(search)
        self.max_output = max_output
        self.max_seconds = max_seconds
        self.max_operations = max_operations
        self._envs = {
            "md": self._env(loader, _md_finalize, autoescape=False),
            "html": self._env(loader, None, autoescape=True),
            "txt": self._env(loader, _txt_finalize, autoescape=False),
        }

    @staticmethod
    def _env(loader: jinja2.BaseLoader, finalize: Callable[[Any], Any] | None, *, autoescape: bool) -> BoundedSandbox:
        env = BoundedSandbox(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            autoescape=autoescape,
            finalize=finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters["money"] = _money
        env.filters["one_line"] = _one_line
        env.filters["quote"] = _quote
        env.bound_filters()
        return env

    def _resolve(self, filename: str) -> str:
        """The file to load: an admin's override under the older name, when there is no override under the new."""
        old = self.aliases.get(filename)
        if old is None or any((d / filename).is_file() for d in self.template_dirs):
            return filename
        return old if any((d / old).is_file() for d in self.template_dirs) else filename

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _kind(name: str) -> str:
        for kind in ("md", "html", "txt"):
            if name.endswith(f".{kind}.j2"):
                return kind
        raise TemplateError(f"template {name}: name must end in .md.j2, .html.j2 or .txt.j2")

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Render one template; any failure is a TemplateError naming the template and the line."""
        filename = self._resolve(TEMPLATES.get(name, name))
        env = self._envs[self._kind(filename)]
        try:
            template = env.get_template(filename)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {exc.filename or filename}, line {exc.lineno}: {exc.message}") from None
        except jinja2.TemplateNotFound:
            raise TemplateError(f"template {filename} not found in the template folders") from None
        out: list[str] = []
        size = 0
        limit = self.max_output
        budget = _Budget(self.max_seconds, self.max_operations)  # what ``bounded`` sets, without its generator
        deadline = budget.deadline
        clock = time.monotonic
        token = _BUDGET.set(budget)
        try:
            for chunk in template.generate(**context):
                out.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise TemplateError(f"template {filename}: output larger than {self.max_output} characters")
                if clock() > deadline:
                    raise TemplateError(f"template {filename}: rendering took longer than {self.max_seconds} s")
        except TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {exc.filename or filename}, line {exc.lineno}: {exc.message}") from None
        except SecurityError as exc:
            raise TemplateError(f"template {filename}, line {_line_of(exc, filename)}: not allowed: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {filename}, line {_line_of(exc, filename)}: {exc.message}") from None
        except Exception as exc:
            raise TemplateError(
                f"template {filename}, line {_line_of(exc, filename)}: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            _BUDGET.reset(token)
        return "".join(out).strip() + "\n"

    def render_all(self, context: Mapping[str, Any], names: Iterable[str] = TEMPLATES) -> dict[str, str]:
        """Render every handoff template before anything is written, so a broken one stops the escalation."""
        return {name: self.render(name, context) for name in names}


# --- Bounds on admin code (templates and policy conditions) -------------------------------------------------


class LimitExceeded(SecurityError):
    """Admin code went past a bound: too long, too many operations, or too large a value."""


class _Budget:
    """The time and operations left to one render or one condition."""

    __slots__ = ("deadline", "left", "seconds")

    def __init__(self, seconds: float, operations: int) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.left = operations

    def check(self) -> None:
        """Raise LimitExceeded when the operations or the time are spent."""
        if self.left < 0:
            raise LimitExceeded("more than the limit of operations (a loop or recursion without end?)")
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"took longer than {self.seconds} s")


_BUDGET: ContextVar[_Budget | None] = ContextVar("cxbridge_budget", default=None)


@contextmanager
def bounded(seconds: float, operations: int = MAX_OPERATIONS) -> Iterator[None]:
    """Run admin code (a render, a condition) within a time and an operations budget."""
    token = _BUDGET.set(_Budget(seconds, operations))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:  # one operation: this runs for every operation of every render, so kept inline
        budget.left -= 1
        if budget.left < 0 or time.monotonic() > budget.deadline:
            budget.check()  # raises, saying which bound was passed


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")


def _check_percent(fmt: str) -> None:
    """Refuse a ``%`` format whose width or precision is huge, or given by ``*``."""
    for match in _PERCENT_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*":
                raise LimitExceeded("a '*' width or precision in a % format is not allowed")
            if part is not None and int(part) > MAX_SIZE:
                raise LimitExceeded(f"a % format width of {part} is above the limit of {MAX_SIZE}")


def _check_braces(fmt: str) -> None:
    """Refuse a ``str.format`` whose width or precision is huge, or nested (``{:{w}}``)."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # format() itself reports the broken format
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise LimitExceeded("a nested replacement field in a format spec is not allowed")
        _check_numbers_in(spec, "a format width")


def _check_numbers_in(text: str, what: str) -> None:
    for number in _NUMBER.findall(text):
        if len(number) > 7 or int(number) > MAX_SIZE:
            raise LimitExceeded(f"{what} of {number} is above the limit of {MAX_SIZE}")


def _check_args(args: Iterable[Any], what: str) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_SIZE:
            raise LimitExceeded(f"{what}: the number {arg} is above the limit of {MAX_SIZE}")


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _bounded_binop(operator_name: str, left: Any, right: Any) -> Any:
    """One intercepted operator, refused when its result would be huge."""
    if operator_name == "**":
        if isinstance(right, int | float | Decimal) and abs(float(right)) > MAX_EXPONENT:
            raise LimitExceeded(f"exponent {right} is above the limit of {MAX_EXPONENT}")
        return left**right
    if operator_name == "*":
        for seq, count in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(count, int) and size * count > MAX_SIZE:
                raise LimitExceeded(f"repeating a sequence {count} times is above the limit of {MAX_SIZE} items")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise LimitExceeded(f"a product above {MAX_INT_BITS} bits")
        return left * right
    if operator_name == "+":
        lsize, rsize = _size(left), _size(right)
        if lsize is not None and rsize is not None and lsize + rsize > MAX_SIZE:
            raise LimitExceeded(f"joining sequences longer than the limit of {MAX_SIZE} items")
        return left + right
    if operator_name == "%" and isinstance(left, str):
        _check_percent(left)
    return left % right


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter counted as one operation, with no huge number among its arguments and no huge format."""
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _step()
        if name == "format":
            if args[skip - 1 :] and isinstance(args[skip - 1], str):
                _check_percent(args[skip - 1])
        else:
            _check_args([*args[skip:], *kwargs.values()], f"the filter {name}")
        return func(*args, **kwargs)

    return wrapper


@jinja2.pass_eval_context
def _bounded_concat(eval_ctx: jinja2.nodes.EvalContext, items: Sequence[Any]) -> Any:
    """``a ~ b``, refused when the result would be huge."""
    _step()
    if sum(len(item) if isinstance(item, str) else len(str(item)) for item in items) > MAX_SIZE:
        raise LimitExceeded(f"joining text longer than the limit of {MAX_SIZE} characters")
    return jinja2.runtime.markup_join(items) if eval_ctx.autoescape else jinja2.runtime.str_join(items)


def _bounded_steps(iterable: Any) -> Iterator[Any]:
    """A loop's items, each step counted against the budget."""
    for item in iterable:
        _step()
        yield item


class _Bound(jinja2.visitor.NodeTransformer):
    """Count every loop step and check every ``~`` (neither passes through the sandbox's hooks)."""

    def visit_For(self, node: jinja2.nodes.For, *args: Any, **kwargs: Any) -> jinja2.nodes.Node:
        self.generic_visit(node)
        node.iter = jinja2.nodes.Filter(node.iter, "_cxb_steps", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: jinja2.nodes.Concat, *args: Any, **kwargs: Any) -> jinja2.nodes.Node:
        self.generic_visit(node)
        items = jinja2.nodes.List(node.nodes, lineno=node.lineno)
        return jinja2.nodes.Filter(items, "_cxb_concat", [], [], None, None, lineno=node.lineno)


_DICT_ATTRIBUTES = frozenset(dir(dict))
"""Every attribute a plain dict has (its type's and ``object``'s): any other name read on a dict is a key."""


class BoundedSandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The sandbox for admin code: every call, attribute or item read, operator and loop step is counted against
    the running budget (time and operations, see :func:`bounded`), and what could build a huge value is refused
    first (:data:`MAX_SIZE`). A refusal is a :class:`LimitExceeded`, a ``SecurityError``."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters["_cxb_steps"] = _bounded_steps
        self.filters["_cxb_concat"] = _bounded_concat
        self.bound_filters()

    def bound_filters(self) -> None:
        """Wrap every filter (call again after adding filters)."""
        for name, func in list(self.filters.items()):
            if not name.startswith("_cxb_") and not getattr(func, "_cxb_bounded", False):
                wrapped = _bounded_filter(name, func)
                wrapped._cxb_bounded = True  # type: ignore[attr-defined]
                self.filters[name] = wrapped

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict (the template's own over the environment's), not Jinja's ChainMap:
        every render copies them into its context, and copying a ChainMap runs Python code for each name (half the
        fixed cost of a render). The environment's globals are never changed once templates are loaded (Jinja's own
        advice), so the copy misses nothing."""
        return {**self.globals, **(d or {})}

    def _parse(self, source: str, name: str | None, filename: str | None) -> jinja2.nodes.Template:
        template = super()._parse(source, name, filename)
        bounded_template: jinja2.nodes.Template = _Bound().visit(template)
        return bounded_template

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        _step()
        return _bounded_binop(operator_name, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _step()
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            # what the sandbox's getattr does for a plain dict, without raising AttributeError first: a dict has no
            # attribute of that name, so the name is read as a key (the handoff's contexts are plain dicts)
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _step()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        _check_braces(value.__self__)
        return wrapper

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str | bytes | list | tuple | dict) or __obj is __self.globals.get("lipsum"):
            _check_args([*args, *kwargs.values()], f"{getattr(__obj, '__name__', 'the call')}()")
        return super().call(__context, __obj, *args, **kwargs)


def _line_of(exc: BaseException, filename: str) -> str:
    """The template line an exception was raised at, from the traceback Jinja rewrites."""
    tb = exc.__traceback__
    line: int | None = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(filename):
            line = tb.tb_lineno
        tb = tb.tb_next
    return str(line) if line is not None else "?"
