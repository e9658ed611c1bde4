"""The handoff templates: escaping per target, sandboxing, and errors that name the template and the line."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from cxbridge.errors import TemplateError
from cxbridge.handoff import TEMPLATES, Handoff, escape_markdown


def context(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "summary": "Exports fail",
        "ticket": {
            "system": "Zendesk",
            "id": "1",
            "url": "https://acme.zendesk.com/agent/tickets/1",
            "subject": "Exports fail",
            "status": "open",
            "priority": "urgent",
            "tags": [],
            "created_at": "2026-11-01 10:00 UTC",
            "age": "3 days old",
            "requester": {"name": "Ada", "email": "ada@acme.example"},
            "organization": "Acme",
        },
        "customer": {
            "known": True,
            "name": "Acme Corp",
            "domain": "acme.example",
            "tier": "strategic",
            "arr": "480000",
            "currency": "USD",
            "owner": "Olivia",
            "owner_email": "olivia@cxbridge.example",
            "match": "email_domain",
            "match_text": "the requester's email domain (acme.example)",
            "renewal_date": "2027-01-31",
            "lifecycle_stage": "customer",
            "deals": [
                {
                    "name": "Expansion",
                    "stage": "contractsent",
                    "amount": "120000",
                    "currency": "USD",
                    "close_date": None,
                }
            ],
        },
        "first_comment": "It times out.",
        "agent_summary": "Reproduced.",
        "agent_summary_source": "the ticket's latest internal note",
        "history": [{"public": True}, {"public": False}],
        "priority": {"value": "Highest", "reason": "strategic and urgent"},
        "decisions": [],
        "agent": {"name": "Sam", "email": None},
        "issue": {"key": "ENG-1", "url": "https://acme.atlassian.net/browse/ENG-1", "created": True},
    }
    base.update(over)
    return base


def test_every_default_template_renders() -> None:
    """The packaged templates render with a full context and carry the customer and the ticket."""
    out = Handoff().render_all(context())
    assert set(out) == set(TEMPLATES)
    assert "Acme Corp" in out["issue_description"]
    assert "480,000 USD" in out["issue_description"]
    assert "Expansion" in out["issue_description"]
    assert "ENG-1" in out["helpdesk_note"]
    assert "Found by the requester's email domain (acme.example)." in out["helpdesk_note"]
    assert "Olivia (olivia\\.owner" not in out["issue_description"]
    assert "**Found in the CRM by:** the requester\\'s email domain" in out["issue_description"]
    assert out["issue_summary"].count("\n") == 1


def test_customer_values_are_data_not_markdown() -> None:
    """A customer's words cannot become Markdown links, headings or emphasis in the Jira description."""
    evil = "# Heading [click](http://evil.example) **bold** <script>x</script>"
    out = Handoff().render(
        "issue_description",
        context(first_comment=evil, customer={**context()["customer"], "name": "[x](http://evil.example)"}),
    )  # type: ignore[dict-item]
    assert "[x](http" not in out
    assert "\\[x\\]\\(http\\://evil\\.example\\)" in out
    assert "[Zendesk #1](https" in out
    assert "> \\# Heading" in out


def test_html_note_is_autoescaped() -> None:
    out = Handoff().render("crm_note", context(ticket={**context()["ticket"], "subject": "<b>hi</b>"}))  # type: ignore[dict-item]
    assert "&lt;b&gt;hi&lt;/b&gt;" in out
    assert "<b>hi</b>" not in out


def test_unknown_customer_is_said_plainly() -> None:
    out = Handoff().render("issue_description", context(customer={**context()["customer"], "known": False}))  # type: ignore[dict-item]
    assert "unknown to the CRM" in out


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ nope }}", "line 1: 'nope' is undefined"),
        ("ok\n{% if %}", "line 2"),
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{{ cycler.__init__.__globals__ }}", "line 1"),
        ("{{ 'a{0.__class__}b'.format(1) }}", "line 1"),
    ],
)
def test_template_errors_name_template_and_line(tmp_path: Path, source: str, expected: str) -> None:
    """An undefined name, a syntax error or a sandbox escape is a TemplateError naming file and line."""
    (tmp_path / "issue_description.md.j2").write_text(source)
    with pytest.raises(TemplateError) as err:
        Handoff([tmp_path]).render("issue_description", context())
    assert "issue_description.md.j2" in str(err.value)
    assert expected in str(err.value)


def test_admin_template_overrides_default(tmp_path: Path) -> None:
    (tmp_path / "helpdesk_note.txt.j2").write_text("Custom note for {{ issue.key }}")
    assert Handoff([tmp_path]).render("helpdesk_note", context()) == "Custom note for ENG-1\n"


def test_an_override_under_a_plugins_older_name_is_still_found(tmp_path: Path) -> None:
    """An admin's ``zendesk_note.txt.j2`` (the name before templates were named by role) still overrides the
    helpdesk note when the plugin declares that alias; an override under the new name wins over it."""
    aliases = {"helpdesk_note.txt.j2": "zendesk_note.txt.j2"}
    (tmp_path / "zendesk_note.txt.j2").write_text("Old-name note for {{ issue.key }}")
    assert Handoff([tmp_path], aliases=aliases).render("helpdesk_note", context()) == "Old-name note for ENG-1\n"
    assert Handoff([tmp_path]).render("helpdesk_note", context()).startswith("Escalated to engineering")
    (tmp_path / "helpdesk_note.txt.j2").write_text("New-name note")
    assert Handoff([tmp_path], aliases=aliases).render("helpdesk_note", context()) == "New-name note\n"


def test_output_size_is_capped(tmp_path: Path) -> None:
    (tmp_path / "issue_description.md.j2").write_text("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}")
    with pytest.raises(TemplateError, match="larger than"):
        Handoff([tmp_path]).render("issue_description", context())


def test_escape_markdown_escapes_punctuation() -> None:
    assert escape_markdown("a*b_[c](d)") == "a\\*b\\_\\[c\\]\\(d\\)"


@pytest.mark.parametrize(
    "source",
    [
        "{{ d.name }}",
        "{{ d.items == 'shadowed' }} {{ d['items'] }}",  # a dict's own attribute wins over a key of that name
        "{{ d._private }}",
        "{{ d.get('name') }}",
        "{{ d.nope }}",
        "{{ d.update }}",
        "{{ d.__class__ }}",
        "{{ d.nested.deeper }}",
        "{{ s.name }}",  # a dict subclass takes the sandbox's own path
    ],
)
def test_reading_a_dict_key_as_an_attribute_is_jinjas_own_lookup(source: str) -> None:
    """The sandbox's shortcut for plain dicts gives what Jinja's sandbox gives: the attribute when a dict has one
    of that name, else the key, else an undefined (an error under StrictUndefined), and refusals stay refusals."""
    import jinja2
    import jinja2.sandbox

    from cxbridge.handoff import BoundedSandbox

    class Sub(dict[str, object]):
        pass

    values = {
        "d": {"name": "x", "items": "shadowed", "_private": 1, "nested": {"deeper": "y"}},
        "s": Sub(name="z"),
    }

    def outcome(env: jinja2.Environment) -> str:
        try:
            return env.from_string(source).render(**values)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    plain = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    assert outcome(BoundedSandbox(undefined=jinja2.StrictUndefined)) == outcome(plain)


def test_escape_markdown_escapes_each_special_character_alone() -> None:
    """Every character CommonMark could read as markup gets one backslash; others, and line breaks, stay."""
    specials = "\\`*_{}[]()#+-.!|<>~=&:\"'"
    assert escape_markdown(specials) == "".join("\\" + c for c in specials)
    assert (
        escape_markdown("naïve \u2013 \u201cquoted\u201d 42 $%@^/?,;") == "naïve \u2013 \u201cquoted\u201d 42 $%@^/?,;"
    )
    assert escape_markdown("one.\n  two*") == "one\\.\ntwo\\*"


def test_a_templates_globals_are_the_environments_under_its_own(tmp_path: Path) -> None:
    """Templates see Jinja's global functions, and globals given for one template win over the environment's and
    stay that template's own (the globals are one dict per template)."""
    from cxbridge.handoff import BoundedSandbox

    (tmp_path / "g.txt.j2").write_text("{{ range(3) | list }} {{ namespace(a=1).a }} {{ extra | default('none') }}")
    env = BoundedSandbox(loader=jinja2.FileSystemLoader(str(tmp_path)), undefined=jinja2.StrictUndefined)
    assert env.get_template("g.txt.j2").render() == "[0, 1, 2] 1 none"
    (tmp_path / "h.txt.j2").write_text("{{ extra }} {{ range(2) }}")
    assert env.get_template("h.txt.j2", globals={"extra": "mine", "range": lambda n: "shadowed"}).render() == (
        "mine shadowed"
    )
    assert env.get_template("g.txt.j2").render() == "[0, 1, 2] 1 none"
    assert "extra" not in env.globals
