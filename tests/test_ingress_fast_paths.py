"""The receiver's cheaper paths answer, read and store exactly what the general ones did."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest
from werkzeug.datastructures import EnvironHeaders
from werkzeug.wrappers import Response

from cxbridge.errors import WebhookRejected
from cxbridge.models import Ref, to_jsonable
from cxbridge.store.base import json_text, jsonable
from cxbridge.store.sqlite import _dumps_job_payload
from cxbridge.webhooks.metrics import Metrics
from cxbridge.webhooks.receiver import MAX_NESTING, JsonAnswer, nesting_problem, request_headers
from cxbridge.webhooks.verify import header_text


def _call(app: Any, method: str) -> tuple[str, list[tuple[str, str]], bytes]:
    seen: list[Any] = []
    body = b"".join(
        app(
            {"REQUEST_METHOD": method, "SERVER_NAME": "x", "SERVER_PORT": "80"},
            lambda s, h, e=None: seen.append((s, h)),
        )
    )
    return seen[0][0], seen[0][1], body


@pytest.mark.parametrize("method", ["POST", "GET", "HEAD"])
@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (200, {"accepted": 1, "duplicates": 0}, None),
        (503, {"error": "the delivery could not be stored; retry later"}, {"Retry-After": "5"}),
        (405, {"error": "method not allowed"}, {"Allow": "POST"}),
        (408, {"error": "ünïcode"}, {"Connection": "close"}),
        (404, {"error": "no webhook endpoint at this path"}, None),
    ],
)
def test_json_answer_sends_what_werkzeug_sent(method: str, status: int, body: dict[str, Any], headers: Any) -> None:
    """Status line, headers (their order too) and body equal werkzeug's Response for the same JSON; none to HEAD."""
    text = json.dumps(body, separators=(",", ":")) + "\n"
    old = Response(text, status=status, headers=dict(headers or {}), content_type="application/json")
    new = JsonAnswer(status, body, headers)
    assert _call(new, method) == _call(old, method)
    assert new.status_code == status
    assert new.get_json() == body


def test_request_headers_equal_environ_headers() -> None:
    """The header dict the verifiers get is the one werkzeug's EnvironHeaders gave, odd names included."""
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "",
        "HTTP_CONTENT_TYPE": "text/plain",
        "HTTP_CONTENT_LENGTH": "3",
        "HTTP_X_HUBSPOT_SIGNATURE_V3": "abc",
        "HTTP_X_ZENDESK_WEBHOOK_SIGNATURE_TIMESTAMP": "2021-07-25T10:00:00Z",
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_X_WEIRD__NAME_": "v",
        "HTTPX": "not a header",
        "wsgi.input": io.BytesIO(b""),
    }
    assert request_headers(environ) == dict(EnvironHeaders(environ).items())
    environ["CONTENT_LENGTH"] = "12"
    assert request_headers(environ) == dict(EnvironHeaders(environ).items())


class Str(str):
    pass


class Dict(dict):  # type: ignore[type-arg]
    pass


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, 2.5, None, True, "x"]}, None),
        ((1, (2, Str("s"))), None),
        (Dict(a=OrderedDict(b=[1])), None),
        ({"a": {1, 2}}, "holds a value that is not JSON (set)"),
        ({"a": b"bytes"}, "holds a value that is not JSON (bytes)"),
    ],
)
def test_nesting_problem_by_type(value: Any, problem: str | None) -> None:
    """Subclasses of the JSON types still count as JSON, other types do not."""
    assert nesting_problem(value) == problem


def test_nesting_problem_at_the_limit() -> None:
    """A payload nested exactly to the limit is storable; one level more is not."""
    ok: Any = "leaf"
    for _ in range(MAX_NESTING):
        ok = [ok]
    assert nesting_problem(ok) is None
    assert nesting_problem({"k": ok}) == f"nested deeper than {MAX_NESTING} levels"


WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "value",
    [
        {
            "id": "1",
            "payload": {"ticket": {"id": 4, "tags": ["a", "b"]}, "z": None, "f": 1.5, "t": True, "u": "é\u2028"},
        },
        {"b": [1, {"c": []}], "a": {}},
        {"when": WHEN, "amount": Decimal("1.10")},
        {"ref": Ref("zendesk", "ticket", "4"), "t": (1, 2)},
        {1: "int key", "x": 2},
        {True: "bool key"},
        {None: "none key"},
        {Str("k"): "str subclass key"},
        [1, "two", None],
        "text",
    ],
)
def test_delivery_serialisation_equals_dumps(value: Any) -> None:
    """Plain JSON skips the model walk, anything else takes it: the stored text is the same either way."""
    assert json_text(value) == json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))


def test_plain_json_is_only_exact_json_types() -> None:
    """Only dicts with str keys, lists, tuples and scalars of exactly the JSON types are kept as they are."""
    plain = {"a": [1, 2.0, None, False, "s", {"b": []}], "t": (1,)}
    assert jsonable(plain) is plain
    for other in ({1: "a"}, {"a": Decimal(1)}, Dict(a=1), {Str("a"): 1}):
        assert jsonable(other) is not other


@pytest.mark.parametrize(
    "record",
    [
        {"id": "e1", "kind": "ticket.tag_added", "payload": {"ticket": {"id": 4}}, "received_at": None},
        {"id": "e2", "when": WHEN},
    ],
)
def test_job_payload_reuses_the_record_text(record: dict[str, Any]) -> None:
    """The job payload that carries the inbox row's record is the text json_text makes of it."""
    record_text = json_text(record)
    for job in (
        {"event": record, "system": "zendesk"},
        {"system": "zendesk", "event": record, "other": {"x": [1]}},
        {"zz": record, "aa": record},
        {"event": dict(record), "system": "zendesk"},  # equal but not the same object: serialised on its own
        {"event": record, 5: "non-str key"},
    ):
        assert _dumps_job_payload(job, record, record_text) == json_text(job)


def test_metrics_count_each_label_set_on_its_own() -> None:
    """The cached children still count per system and result, and the histogram per system."""
    metrics = Metrics(["zendesk"], process=False)
    for system, result in [
        ("zendesk", "accepted"),
        ("zendesk", "accepted"),
        ("jira", "duplicate"),
        ("zendesk", "error"),
    ]:
        metrics.delivery(system, result)
    metrics.observe_delivery("zendesk", 0.002)
    metrics.observe_delivery("jira", 0.3)
    metrics.observe_delivery("jira", -1.0)
    assert metrics.deliveries() == {("zendesk", "accepted"): 2, ("jira", "duplicate"): 1, ("zendesk", "error"): 1}
    text = metrics.render()
    assert 'cxbridge_webhook_deliveries_total{result="accepted",system="zendesk"} 2.0' in text
    assert 'cxbridge_webhook_deliveries_total{result="duplicate",system="jira"} 1.0' in text
    assert 'cxbridge_webhook_delivery_seconds_count{system="jira"} 2.0' in text
    assert 'cxbridge_webhook_delivery_seconds_bucket{le="0.005",system="zendesk"} 1.0' in text
    with pytest.raises(ValueError, match="unknown delivery result"):
        metrics.delivery("zendesk", "lost")


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        ("a" * 8192, True),
        ("a" * 8193, False),
        ("\U0001f600" * 2048, True),  # 4 bytes each: exactly the cap
        ("\U0001f600" * 2048 + "a", False),
        ("é" * 4096, True),
        ("é" * 4097, False),
    ],
)
def test_header_cap_counts_utf8_bytes(value: str, fits: bool) -> None:
    """A header is measured in UTF-8 bytes against MAX_HEADER_BYTES, however short in characters."""
    headers = {"X-Sig": value}
    if fits:
        assert header_text(headers, "x-sig", system="test") == value
    else:
        with pytest.raises(WebhookRejected, match="longer than 8192 bytes"):
            header_text(headers, "x-sig", system="test")


@pytest.mark.parametrize(("accepted", "duplicates"), [(1, 0), (0, 1), (0, 0), (12, 3)])
def test_accepted_answer_is_the_json_answer(accepted: int, duplicates: int) -> None:
    """The stored delivery's 200 is byte for byte the JSON answer of the same counts."""
    fast = JsonAnswer.accepted(accepted, duplicates)
    general = JsonAnswer(200, {"accepted": accepted, "duplicates": duplicates})
    assert _call(fast, "POST") == _call(general, "POST")
    assert fast.get_json() == {"accepted": accepted, "duplicates": duplicates}
