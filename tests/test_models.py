"""``to_jsonable``: the models as the store and the JSON output keep them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from cxbridge.models import Customer, Deal, Ref, to_jsonable


class Label(str):
    """A str subclass: returned as it is, like a plain string."""


@dataclass
class Inner:
    when: datetime
    amount: Decimal
    hidden: str = field(default="x", repr=False)


@dataclass
class Outer:
    ref: Ref
    inner: Inner
    items: list[object]
    by_name: dict[object, object]


def test_models_become_json_values_with_the_fields_their_repr_shows() -> None:
    """Refs become strings, Decimals exact strings, datetimes ISO text; fields left out of the repr are left out;
    dict keys become strings; tuples become lists; plain values and str subclasses stay as they are."""
    when = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    value = Outer(
        ref=Ref("zendesk", "ticket", "1"),
        inner=Inner(when=when, amount=Decimal("1.50")),
        items=[1, 2.5, True, None, Label("l"), (Ref("a", "b", "c"),)],
        by_name={3: Decimal("2")},
    )
    out = to_jsonable(value)
    assert out == {
        "ref": "zendesk:ticket:1",
        "inner": {"when": "2026-12-07T13:00:00+00:00", "amount": "1.50"},
        "items": [1, 2.5, True, None, "l", ["a:b:c"]],
        "by_name": {"3": "2"},
    }
    assert type(out["items"][4]) is Label


def test_each_dataclass_keeps_its_own_fields() -> None:
    """The fields looked up once per class are that class's: two models converted one after the other each give
    their own."""
    deal = Deal(ref=Ref("hubspot", "deal", "9"), name="Expansion", amount=Decimal("10"))
    customer = Customer(company_ref=Ref("hubspot", "company", "1"), contact_ref=None, name="Acme", deals=[deal])
    first = to_jsonable(deal)
    assert first["ref"] == "hubspot:deal:9"
    assert "company_ref" not in first
    data = to_jsonable(customer)
    assert data["company_ref"] == "hubspot:company:1"
    assert data["deals"] == [first]
    assert "stage" in first
    assert "deals" not in first
