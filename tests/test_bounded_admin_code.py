"""Admin code (handoff templates, policy conditions) is bounded in time and memory whatever it outputs."""

from __future__ import annotations

from pathlib import Path

import jinja2.sandbox
import pytest

from cxbridge.errors import ConfigError, TemplateError
from cxbridge.handoff import MAX_RANGE, Handoff
from cxbridge.workflows.policy import compile_policies


def handoff(tmp_path: Path, source: str, **limits: float) -> Handoff:
    (tmp_path / "admin.txt.j2").write_text(source)
    return Handoff([tmp_path], **limits)  # type: ignore[arg-type]


def rule(when: str) -> dict[str, object]:
    return {"rules": [{"name": "greedy", "when": when, "grant": {"skip_triage": True}}]}


def test_the_sandbox_range_cap_we_rely_on_holds() -> None:
    """Jinja2's sandbox refuses a range longer than MAX_RANGE, so one range can't run a billion steps."""
    assert MAX_RANGE == jinja2.sandbox.MAX_RANGE == 100_000
    with pytest.raises(OverflowError):
        jinja2.sandbox.ImmutableSandboxedEnvironment().from_string("{{ range(10**9)|length }}").render()


def test_a_loop_with_no_output_is_stopped_by_the_operations_budget(tmp_path: Path) -> None:
    """Nested loops that print nothing stop at the (default) operations limit, with the template and the line named."""
    h = handoff(tmp_path, "x\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    h.max_seconds = 3600.0  # only the operations limit can stop it, however slow the machine
    with pytest.raises(TemplateError, match=r"template admin\.txt\.j2, line 2: not allowed: more than the limit"):
        h.render("admin.txt.j2", {})


def test_a_silent_loop_past_the_time_limit_is_stopped(tmp_path: Path) -> None:
    """The deadline is checked on every loop step, not only between output chunks."""
    h = handoff(tmp_path, "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    h.max_seconds = 0.0
    with pytest.raises(TemplateError, match=r"admin\.txt\.j2, line 1: not allowed: took longer than 0\.0 s"):
        h.render("admin.txt.j2", {})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ('x' * 10**9)|length }}", "repeating a sequence 1000000000 times"),
        ("{{ '%01000000000d' % 1 }}", "a % format width of 1000000000"),
        ("{{ '%0*d' % (5, 1) }}", "'\\*' width or precision"),
        ("{{ ([1] * 10000 * 10000)|length }}", "repeating a sequence 10000 times"),
        ("{{ '{:>1000000000}'.format(1) }}", "a format width of 1000000000"),
        ("{{ '{:{w}}'.format(1, w=5) }}", "nested replacement field"),
        ("{{ '%01000000000d'|format(1) }}", "a % format width of 1000000000"),
        ("{{ 'x'|center(10**9) }}", "the filter center: the number 1000000000"),
        ("{{ 'x'.zfill(10**9) }}", "zfill\\(\\): the number 1000000000"),
        ("{{ (2 ** 1000) }}", "exponent 1000"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "joining text longer than",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "joining sequences longer than",
        ),
    ],
)
def test_a_huge_value_in_a_template_is_refused_before_it_is_built(tmp_path: Path, source: str, message: str) -> None:
    """Each way to build about a gigabyte is refused with an error naming the template and the line."""
    h = handoff(tmp_path, source)
    with pytest.raises(TemplateError, match=r"template admin\.txt\.j2, line 1: not allowed: .*" + message):
        h.render("admin.txt.j2", {})


def test_ordinary_templates_render_as_before(tmp_path: Path) -> None:
    """Loops, concatenation, formatting, filters and small repetitions behave as in plain Jinja2."""
    source = (
        "{% for t in tags %}{{ loop.index ~ ':' ~ t }}{% if not loop.last %}, {% endif %}{% endfor %}\n"
        "{{ '%5.1f' % ratio }}|{{ '{:>4}'.format(n) }}|{{ '-' * 3 }}|{{ [0] * 2 }}|{{ 'ab' + 'c' }}"
        "|{{ name|center(7) }}|{{ big * 2 }}|{{ 'a,b'.split(',')|join('+') }}"
    )
    h = handoff(tmp_path, source)
    context = {"tags": ["x", "y"], "ratio": 2.25, "n": 7, "name": "Ada", "big": 480000000}
    assert h.render("admin.txt.j2", context) == "1:x, 2:y  2.2|   7|---|[0, 0]|abc|  Ada  |960000000|a+b\n"


def test_markup_concatenation_still_escapes(tmp_path: Path) -> None:
    """In an HTML template ``~`` still escapes the customer's text."""
    (tmp_path / "admin.html.j2").write_text("{{ '<b>' ~ name }}")
    assert Handoff([tmp_path]).render("admin.html.j2", {"name": "<i>"}) == "&lt;b&gt;&lt;i&gt;\n"


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("('x' * 10**9)|length > 0", "repeating a sequence 1000000000 times"),
        ("'%01000000000d' % 1 == ''", "a % format width of 1000000000"),
        ("([1] * 10000 * 10000)|length > 0", "repeating a sequence 10000 times"),
        ("'%01000000000d'|format(1) == ''", "a % format width of 1000000000"),
        ("'x'|center(10**9) == ''", "the filter center: the number 1000000000"),
    ],
)
def test_a_huge_value_in_a_policy_rule_is_a_config_error_naming_the_rule(when: str, message: str) -> None:
    """A condition that would build about a gigabyte is refused when the configuration loads."""
    with pytest.raises(ConfigError, match=r"policies rule 'greedy': the condition .* is not allowed: .*" + message):
        compile_policies(rule(when))


def test_a_rule_that_grows_huge_on_real_data_does_not_apply() -> None:
    """On a decision, a condition that would build a huge value is an error outcome: the rule does not apply."""
    policies = compile_policies(rule("('x' * (ticket.subject|length * 100000))|length > 0"))
    context = {"ticket": {"subject": "a" * 20}, "customer": {}, "agent": {}}
    outcome = policies.rules[0].evaluate(context)
    assert outcome.state == "error"
    assert "not allowed: repeating a sequence 2000000 times" in outcome.detail


def test_ordinary_rules_still_decide() -> None:
    """Ordinary conditions evaluate as before under the bounds."""
    policies = compile_policies(rule("agent.team == 'tier1' and customer.arr > 479999.99 and 'vip' in ticket.tags"))
    context = {"ticket": {"tags": ["vip"]}, "customer": {"arr": 480000}, "agent": {"team": "tier1"}}
    assert policies.rules[0].evaluate(context).applies


def test_a_small_operations_budget_is_reported_as_operations_not_time(tmp_path: Path) -> None:
    """The inlined per-operation check names the bound that was passed: here the operations, the time being ample."""
    h = handoff(tmp_path, "{% for i in range(50) %}{{ i }}{% endfor %}", max_operations=10)
    with pytest.raises(TemplateError, match=r"not allowed: more than the limit of operations"):
        h.render("admin.txt.j2", {})
    assert handoff(tmp_path, "{% for i in range(3) %}{{ i }}{% endfor %}", max_operations=10).render(
        "admin.txt.j2", {}
    ) == ("012\n")
