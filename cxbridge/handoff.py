"""The handoff: Jinja2 templates that carry a ticket's whole context into Jira, Zendesk and HubSpot.

Templates live in the admin's folders first and the packaged defaults second, and are found by name. The
template's suffix says what it writes and so how values are escaped:

- ``*.md.j2``: Markdown (the Jira description). Every value is escaped so that a customer's words stay data:
  they can never become a heading, a link or a table.
- ``*.html.j2``: HTML (the HubSpot note), autoescaped.
- ``*.txt.j2``: plain text (the Jira summary, the Zendesk internal note), not escaped.

The environment is sandboxed (``ImmutableSandboxedEnvironment``), undefined names are errors, and a render is
capped in time and size.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from .errors import TemplateError

MAX_OUTPUT_CHARS = 64 * 1024
MAX_RENDER_SECONDS = 2.0

TEMPLATES = {
    "issue_summary": "issue_summary.txt.j2",
    "issue_description": "issue_description.md.j2",
    "helpdesk_note": "helpdesk_note.txt.j2",
    "crm_note": "crm_note.html.j2",
}
"""The escalation's templates, named by the role they write to: the tracker's issue, the helpdesk's ticket
note, the CRM's timeline note."""

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~=&:\"'])")


class MarkdownSafe(str):
    """A string that is already Markdown and must not be escaped again."""

    __slots__ = ()


def escape_markdown(value: str) -> str:
    """Backslash-escape every character Markdown could read as markup (CommonMark escapes any punctuation)."""
    text = _MD_SPECIAL.sub(r"\\\1", value)
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
    return MarkdownSafe("\n".join("> " + _MD_SPECIAL.sub(r"\\\1", line.strip()) for line in lines))


class Handoff:
    """Renders the handoff templates by name, admins' folders first."""

    def __init__(
        self,
        template_dirs: Sequence[Path] = (),
        *,
        max_output: int = MAX_OUTPUT_CHARS,
        max_seconds: float = MAX_RENDER_SECONDS,
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
        self._envs = {
            "md": self._env(loader, _md_finalize, autoescape=False),
            "html": self._env(loader, None, autoescape=True),
            "txt": self._env(loader, _txt_finalize, autoescape=False),
        }

    @staticmethod
    def _env(
        loader: jinja2.BaseLoader, finalize: Callable[[Any], Any] | None, *, autoescape: bool
    ) -> jinja2.sandbox.ImmutableSandboxedEnvironment:
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
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
        return env

    def _resolve(self, filename: str) -> str:
        """The file to load: an admin's override under the older name, when there is no override under the new."""
        old = self.aliases.get(filename)
        if old is None or any((d / filename).is_file() for d in self.template_dirs):
            return filename
        return old if any((d / old).is_file() for d in self.template_dirs) else filename

    def _kind(self, name: str) -> str:
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
        started = time.monotonic()
        try:
            for chunk in template.generate(**context):
                out.append(chunk)
                size += len(chunk)
                if size > self.max_output:
                    raise TemplateError(f"template {filename}: output larger than {self.max_output} characters")
                if time.monotonic() - started > self.max_seconds:
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
        return "".join(out).strip() + "\n"

    def render_all(self, context: Mapping[str, Any], names: Iterable[str] = TEMPLATES) -> dict[str, str]:
        """Render every handoff template before anything is written, so a broken one stops the escalation."""
        return {name: self.render(name, context) for name in names}


def _line_of(exc: BaseException, filename: str) -> str:
    """The template line an exception was raised at, from the traceback Jinja rewrites."""
    tb = exc.__traceback__
    line: int | None = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(filename):
            line = tb.tb_lineno
        tb = tb.tb_next
    return str(line) if line is not None else "?"
