"""``VerifierContract``: what every webhook verifier must do, whatever the vendor's signing scheme.

A plugin's tests subclass it (``TimestampedVerifierContract`` when the scheme signs a timestamp), set the class
attributes and implement ``signed_delivery``; pytest then runs every property below against that verifier::

    class TestAcmeVerifier(VerifierContract):
        system = "acme"
        verifier = staticmethod(verify_acme)
        signature_header = "X-Acme-Signature"
        body = b'{"event": "ticket.updated", "ticket": {"id": 1}}'

        def signed_delivery(self, *, secret: str, body: bytes, now: float) -> SignedDelivery:
            return SignedDelivery("POST", URL, {"X-Acme-Signature": sign(secret, body)}, body)

Statuses follow ``cxbridge.webhooks.verify.Verifier``: 401 for a missing or wrong signature (or a stale
timestamp), 400 for a malformed delivery, and never any exception but ``WebhookRejected``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ...errors import WebhookRejected
from ...models import Event
from ...secrets import Secret
from ...webhooks.verify import MAX_HEADER_BYTES, MAX_SIGNATURES, Verifier
from ..webhooks import MALFORMED_SIGNATURE_HEADERS, byte_flips, character_changes

# Inherited @given tests run once per subclass: that is the point, not the mistake the health check looks for.
_FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)

MALFORMED = (*MALFORMED_SIGNATURE_HEADERS, "\x00", "====", "a" * 44)
"""Malformed signature headers every verifier answers with ``WebhookRejected`` only."""

NON_JSON_BODIES = (b"", b"not json", b"\xff\xfe", b"\xff\xfe{}", b'{"a":')
"""Signed bodies that are not JSON at all."""


def _json(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Any JSON value; objects draw their keys from ``keys`` (default: any short text)."""
    keys = keys if keys is not None else st.text(max_size=10)
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
        max_leaves=12,
    )


@dataclass(frozen=True)
class SignedDelivery:
    """One webhook request as the verifier receives it: method, full URL, headers and the raw body."""

    method: str
    url: str
    headers: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""

    def header_name(self, name: str) -> str:
        """The spelling ``headers`` uses for ``name`` (matched case-insensitively), else ``name`` itself."""
        return next((key for key in self.headers if key.lower() == name.lower()), name)

    def with_header(self, name: str, value: Any) -> SignedDelivery:
        """A copy with the header set (replacing any spelling of it)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        headers[self.header_name(name)] = value
        return replace(self, headers=headers)

    def without_header(self, name: str) -> SignedDelivery:
        """A copy without the header (in any spelling)."""
        return replace(self, headers={k: v for k, v in self.headers.items() if k.lower() != name.lower()})

    def header(self, name: str) -> Any:
        """The header's value (looked up case-insensitively)."""
        return self.headers[self.header_name(name)]


class VerifierContract:
    """The properties shared by every webhook verifier; subclass it in a plugin's tests (name it ``Test...``).

    Set ``system``, ``verifier`` (``staticmethod(verify_acme)``), ``signature_header`` and ``body`` (a payload the
    verifier turns into Events), and implement ``signed_delivery``. The status attributes say what a vendor's
    parser answers where schemes legitimately differ (a hex signature with a changed character may be
    malformed, 400, where a base64 one is only wrong, 401).
    """

    system: ClassVar[str]
    verifier: ClassVar[Verifier]
    signature_header: ClassVar[str]
    body: ClassVar[bytes]
    secret: ClassVar[str] = "contract-signing-secret-3f9a"  # noqa: S105 - a test value
    now: ClassVar[float] = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    max_signatures: ClassVar[int | None] = MAX_SIGNATURES
    """How many signatures one header may list (rotation); None when the scheme carries exactly one."""
    signature_change_statuses: ClassVar[tuple[int, ...]] = (401,)
    """The statuses for a signature with one character changed or one bit flipped."""
    malformed_signature_statuses: ClassVar[tuple[int, ...]] = (401,)
    """The statuses for the ``MALFORMED`` signature headers."""
    events_per_delivery: ClassVar[int | None] = None
    """Exactly how many Events one delivery gives, when the scheme fixes it (one per delivery: 1)."""
    fuzz_header_names: ClassVar[tuple[str, ...]] = ()
    """Header names the fuzz tests add to those of ``signed_delivery`` (ids the verifier reads...)."""
    fuzz_payload_keys: ClassVar[tuple[str, ...]] = ()
    """Object keys the signed-JSON fuzz test favours, so it reaches past the first checks of the payload."""

    # -- what a subclass provides -------------------------------------------------------------------------
    def signed_delivery(self, *, secret: str, body: bytes, now: float) -> SignedDelivery:
        """A delivery of ``body`` signed with ``secret`` at time ``now``, with every header the vendor sends."""
        raise NotImplementedError(f"{type(self).__name__} must implement signed_delivery")

    # -- helpers --------------------------------------------------------------------------------------------
    def delivery(self, *, secret: str | None = None, body: bytes | None = None, now: float | None = None) -> Any:
        """``signed_delivery`` with the class's secret, body and time unless given."""
        return self.signed_delivery(
            secret=self.secret if secret is None else secret,
            body=self.body if body is None else body,
            now=self.now if now is None else now,
        )

    def verify(self, delivery: SignedDelivery, *, secrets: list[str] | None = None, now: float | None = None) -> Any:
        """The verifier's answer for a delivery, checked against ``secrets`` (default: the class's secret)."""
        return type(self).verifier(
            method=delivery.method,
            url=delivery.url,
            headers=delivery.headers,
            body=delivery.body,
            secrets=[Secret(s) for s in ([self.secret] if secrets is None else secrets)],
            now=self.now if now is None else now,
        )

    def outcome(self, delivery: SignedDelivery, **kwargs: Any) -> Any:
        """The Events, or the ``WebhookRejected`` raised (any other exception propagates and fails the test)."""
        try:
            return self.verify(delivery, **kwargs)
        except WebhookRejected as exc:
            return exc

    def rejected(self, delivery: SignedDelivery, statuses: tuple[int, ...] = (400, 401), **kwargs: Any) -> Any:
        """The ``WebhookRejected`` the delivery raises; its status must be one of ``statuses``."""
        with pytest.raises(WebhookRejected) as info:
            self.verify(delivery, **kwargs)
        assert info.value.status in statuses, f"status {info.value.status} ({info.value}), expected {statuses}"
        return info.value

    def _signature(self, delivery: SignedDelivery) -> str:
        value = delivery.header(self.signature_header)
        assert isinstance(value, str), f"{self.signature_header} must be text"
        return value

    # -- a good delivery --------------------------------------------------------------------------------------
    def test_valid_delivery_verifies_into_events(self) -> None:
        """A correctly signed delivery gives at least one Event of this system, stamped with the time of receipt."""
        events = self.verify(self.delivery())
        assert isinstance(events, list)
        assert events
        for event in events:
            assert isinstance(event, Event)
            assert event.system == self.system
            assert event.subject.system == self.system
            assert event.received_at == datetime.fromtimestamp(self.now, UTC)
        assert len({e.id for e in events}) == len(events)
        if self.events_per_delivery is not None:
            assert len(events) == self.events_per_delivery

    def test_header_names_are_case_insensitive(self) -> None:
        """Header names lower-cased or upper-cased (as servers and proxies hand them over) still verify."""
        delivery = self.delivery()
        for spell in (str.lower, str.upper):
            respelled = replace(delivery, headers={spell(k): v for k, v in delivery.headers.items()})
            assert self.verify(respelled)

    # -- signatures -----------------------------------------------------------------------------------------
    def test_wrong_secret_is_401(self) -> None:
        """A delivery signed with another secret is refused as unsigned (401)."""
        self.rejected(self.delivery(secret=self.secret + "-other"), (401,))

    def test_missing_signature_header_is_401(self) -> None:
        """A delivery without the signature header is refused (401)."""
        self.rejected(self.delivery().without_header(self.signature_header), (401,))

    def test_rejections_never_show_the_secret_or_the_signature(self) -> None:
        """A rejection's message names neither the secret nor the signature that would have matched."""
        error = self.rejected(self.delivery(secret=self.secret + "-other"), (401,))
        assert self.secret not in str(error)
        assert self._signature(self.delivery()) not in str(error)

    def test_every_body_byte_flip_is_401(self) -> None:
        """Flipping one bit of any byte of the signed body breaks the signature (401)."""
        delivery = self.delivery()
        for mutated in byte_flips(delivery.body):
            self.rejected(replace(delivery, body=mutated), (401,))

    def test_verification_uses_the_raw_bytes(self) -> None:
        """The same JSON re-encoded (other spacing) does not verify: the signature covers the bytes as sent."""
        delivery = self.delivery()
        reencoded = json.dumps(json.loads(delivery.body), indent=1).encode()
        assert reencoded != delivery.body
        self.rejected(replace(delivery, body=reencoded), (401,))

    def test_every_signature_change_is_rejected(self) -> None:
        """Any one character of the signature replaced, or one bit of it flipped, is rejected."""
        delivery = self.delivery()
        signature = self._signature(delivery)
        flips = (signature[:i] + chr(ord(signature[i]) ^ 0x01) + signature[i + 1 :] for i in range(len(signature)))
        for value in (*character_changes(signature), *flips):
            self.rejected(delivery.with_header(self.signature_header, value), self.signature_change_statuses)

    @pytest.mark.parametrize("value", MALFORMED, ids=range(len(MALFORMED)))
    def test_malformed_signature_headers_raise_only_webhook_rejected(self, value: str) -> None:
        """Every malformed signature header of RELIABILITY.md section 7 is a WebhookRejected, nothing else."""
        self.rejected(self.delivery().with_header(self.signature_header, value), self.malformed_signature_statuses)

    @pytest.mark.parametrize("value", [b"bytes-value", 12345, None, ["a"]])
    def test_non_text_signature_values_raise_only_webhook_rejected(self, value: Any) -> None:
        """A signature header holding bytes, a number, None or a list never escapes as another exception."""
        self.rejected(self.delivery().with_header(self.signature_header, value))

    def test_oversized_signature_header_is_400(self) -> None:
        """A signature header over 8 KB is malformed (400), even when it holds the good signature."""
        delivery = self.delivery()
        value = self._signature(delivery) + " " + "A" * MAX_HEADER_BYTES
        self.rejected(delivery.with_header(self.signature_header, value), (400,))

    def test_too_many_signatures_is_400(self) -> None:
        """Two hundred signatures in one header are malformed (400), even if each is the good one."""
        delivery = self.delivery()
        value = " ".join([self._signature(delivery)] * 200)
        self.rejected(delivery.with_header(self.signature_header, value), (400,))

    def test_signatures_up_to_the_cap_verify(self) -> None:
        """Decoys and the good signature within ``max_signatures`` verify; a one-signature scheme refuses two (400)."""
        delivery = self.delivery()
        good = self._signature(delivery)
        if self.max_signatures is None:
            self.rejected(delivery.with_header(self.signature_header, f"{good} {good}"), (400,))
            return
        decoy = self._signature(self.delivery(secret=self.secret + "-decoy"))
        value = ",".join([decoy] * (self.max_signatures - 1) + [good])
        assert self.verify(delivery.with_header(self.signature_header, value))

    # -- secrets --------------------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("signed_with", "active", "accepted"),
        [
            ("old", ["old"], True),
            ("old", ["old", "new"], True),
            ("old", ["new", "old"], True),
            ("new", ["old", "new"], True),
            ("new", ["new", "old"], True),
            ("new", ["new"], True),
            ("old", ["new"], False),  # the old secret retired
            ("new", ["old"], False),
        ],
    )
    def test_rotation(self, signed_with: str, active: list[str], accepted: bool) -> None:
        """Any active secret verifies, whatever its place in the list; a retired one does not (401)."""
        secrets = {"old": self.secret + "-old", "new": self.secret + "-new"}
        delivery = self.delivery(secret=secrets[signed_with])
        if accepted:
            assert self.verify(delivery, secrets=[secrets[a] for a in active])
        else:
            self.rejected(delivery, (401,), secrets=[secrets[a] for a in active])

    @pytest.mark.parametrize("active", [[], [""]], ids=["none", "empty"])
    @pytest.mark.parametrize("signed_with", ["secret", "empty"])
    def test_no_usable_secret_fails_closed(self, active: list[str], signed_with: str) -> None:
        """Without a usable secret nothing verifies (401), not even a delivery signed with an empty key."""
        secret = self.secret if signed_with == "secret" else ""
        self.rejected(self.delivery(secret=secret), (401,), secrets=active)

    # -- bodies ---------------------------------------------------------------------------------------------
    @pytest.mark.parametrize("body", NON_JSON_BODIES)
    def test_signed_non_json_is_400(self, body: bytes) -> None:
        """A correctly signed body that is not JSON is malformed (400), not forged."""
        self.rejected(self.delivery(body=body), (400,))

    def test_signed_body_too_deep_to_parse_is_400(self) -> None:
        """JSON nested past the parser's recursion limit is one 400 naming the system, not a RecursionError."""
        error = self.rejected(self.delivery(body=b"[" * 100_000), (400,))
        assert str(error).startswith(f"{self.system}:")

    @_FUZZ
    @given(data=st.data(), body=st.binary(max_size=200), method=st.text(max_size=10), url=st.text(max_size=100))
    def test_arbitrary_unsigned_input_raises_only_webhook_rejected(
        self, data: st.DataObject, body: bytes, method: str, url: str
    ) -> None:
        """Whatever method, URL, headers (names any case, values any type) and body arrive unsigned: 400 or 401."""
        delivery = self.delivery()
        names = [self.signature_header.lower(), *delivery.headers, *self.fuzz_header_names, "Other"]
        values = st.one_of(st.text(max_size=60), st.binary(max_size=20), st.integers(), st.none())
        headers = data.draw(st.dictionaries(st.sampled_from(names) | st.text(max_size=20), values, max_size=6))
        self.rejected(SignedDelivery(data.draw(st.sampled_from([delivery.method, method])), url, headers, body))

    @_FUZZ
    @given(data=st.data())
    def test_arbitrary_signed_json_gives_events_or_400(self, data: st.DataObject) -> None:
        """Correctly signed JSON of any shape gives Events of this system (unique ids) or a 400, never a crash."""
        keys = st.sampled_from(self.fuzz_payload_keys) | st.text(max_size=10) if self.fuzz_payload_keys else None
        payload = data.draw(_json(keys))
        result = self.outcome(self.delivery(body=json.dumps(payload).encode()))
        if isinstance(result, WebhookRejected):
            assert result.status == 400, str(result)
        else:
            assert result
            assert all(e.system == self.system for e in result)
            assert len({e.id for e in result}) == len(result)
            if self.events_per_delivery is not None:
                assert len(result) == self.events_per_delivery


class TimestampedVerifierContract(VerifierContract):
    """``VerifierContract`` for a scheme that signs a timestamp: the window and the timestamp header too.

    Set ``timestamp_header`` and ``window`` (seconds either side of now); ``signed_delivery`` signs ``now``.
    """

    timestamp_header: ClassVar[str]
    window: ClassVar[float] = 300
    timestamp_change_statuses: ClassVar[tuple[int, ...]] = (400, 401)
    """The statuses for a timestamp with one character changed (unreadable: 400; another time: 401)."""

    @pytest.mark.parametrize("sign", [-1, 1], ids=["past", "future"])
    @pytest.mark.parametrize("beyond", [-1, 0, 1], ids=["inside", "edge", "outside"])
    def test_timestamp_window(self, sign: int, beyond: int) -> None:
        """A timestamp up to ``window`` seconds from now, either way, verifies; one second more is stale (401)."""
        signed_at = self.now + sign * (self.window + beyond)
        delivery = self.delivery(now=signed_at)
        if beyond <= 0:
            assert self.verify(delivery)
        else:
            self.rejected(delivery, (401,))

    def test_missing_timestamp_is_401(self) -> None:
        """A delivery without the timestamp header is unsigned (401)."""
        self.rejected(self.delivery().without_header(self.timestamp_header), (401,))

    def test_every_timestamp_character_change_is_rejected(self) -> None:
        """Any one character of the timestamp replaced is rejected (the signature covers it)."""
        delivery = self.delivery()
        stamp = delivery.header(self.timestamp_header)
        for value in character_changes(stamp):
            self.rejected(delivery.with_header(self.timestamp_header, value), self.timestamp_change_statuses)
