"""Priority from customer tier by ticket priority."""

from cxbridge.workflows.priority import choose_priority


def test_strategic_urgent_goes_first() -> None:
    p = choose_priority("strategic", "urgent")
    assert p.value == "Highest"
    assert "strategic" in p.reason
    assert "urgent" in p.reason


def test_unknown_tier_falls_back_to_default_tier() -> None:
    p = choose_priority(None, "high")
    assert p.value == "Medium"
    assert "treated as standard" in p.reason


def test_admin_table_overrides_a_cell() -> None:
    p = choose_priority("standard", "low", table={"standard": {"low": "Medium"}})
    assert p.value == "Medium"


def test_unknown_ticket_priority_is_treated_as_normal() -> None:
    assert choose_priority("enterprise", "whatever").value == "Medium"
