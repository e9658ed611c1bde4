"""Zendesk's side of the sidebar app's signed page request, for the tests: an RSA key pair made in the test run
(Zendesk keeps the app's private key; cxbridge is given the public one), JWTs signed with it as Zendesk signs the
ZAF JWT of a ``signedUrls`` app (RS256; ``iss`` the account's host, ``aud`` the installation's URL, ``sub`` the
user's URL), the ``[agent_api]`` section that trusts them, and agents in the Zendesk emulator."""

from __future__ import annotations

import functools
import time
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cxbridge.sandbox.modes import Vendors

ISSUER = "https://acme.zendesk.com"
INSTALLATION = "https://acme.zendesk.com/api/v2/apps/installations/4242.json"
SESSION_SECRET = "cxbridge-agent-session-secret-for-tests-0123456789"


@functools.cache
def key_pair(name: str) -> tuple[str, str]:
    """A fresh RSA key pair (private PEM, public PEM); ``name`` tells two pairs apart (the app's, an attacker's)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def app_token(user_id: int | str, *, key: str = "app", lifetime: int = 300, **override: Any) -> str:
    """A signed page request's token for Zendesk user ``user_id`` (claims set to None are left out)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "acme.zendesk.com",
        "aud": INSTALLATION,
        "sub": f"{ISSUER}/api/v2/users/{user_id}.json",
        "iat": now,
        "exp": now + lifetime,
        "context": {"product": "support", "location": "ticket_sidebar"},
    }
    claims.update(override)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key_pair(key)[0], algorithm="RS256")


def agent_api_section(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> dict[str, Any]:
    """``[agent_api]`` trusting the test key pair, with the session secret from the environment."""
    monkeypatch.setenv("CXB_TEST_APP_PUBLIC_KEY", key_pair("app")[1])
    monkeypatch.setenv("CXB_TEST_SESSION_SECRET", SESSION_SECRET)
    return {
        "app_public_keys": [{"env": "CXB_TEST_APP_PUBLIC_KEY"}],
        "issuer": ISSUER,
        "audience": INSTALLATION,
        "session_secrets": [{"env": "CXB_TEST_SESSION_SECRET"}],
        **extra,
    }


def add_user(vendors: Vendors, name: str, email: str, role: str = "agent") -> int:
    """A user in the Zendesk emulator; its id."""
    return int(cast(Any, vendors["zendesk"]).model.add_user(name, email, role).id)
