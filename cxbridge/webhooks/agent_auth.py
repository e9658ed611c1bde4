"""Who the agent is, as the helpdesk vouches for it: the helpdesk's signed app request, then cxbridge's own session.

The helpdesk loads the sidebar app's page from cxbridge with a POST whose ``token`` form field is a JWT the
helpdesk signs RS256 with the app's key pair (the app asks for it in its manifest). ``verify_app_token`` checks it
with the app's public key (``[agent_api] app_public_keys``): the signature (RS256 only: a token signed with any
other algorithm, ``none`` or HS256 keyed with the public key included, is refused), ``iss`` naming the configured
account, ``aud`` the configured app installation, ``exp``. Its ``sub`` names the user who opened the app (the URL of
the user's API record, or the id); cxbridge then reads that user from the helpdesk with its own credentials
(``Helpdesk.agent_person``) for the email the grants need, so nothing the browser writes names the agent.

The page then carries a cxbridge session token (``issue_session``): HS256 with ``[agent_api] session_secrets`` (the
first signs, all verify, for a rotation), bound to that user, valid ``session_minutes``, the same for every ticket.
The app sends it as ``Authorization: Bearer`` on every ``/agent/tickets/...`` call; ``verify_session`` checks it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from ..errors import ConfigError
from ..models import Person
from ..secrets import Secret

MAX_AGENT_BODY = 64 * 1024
"""Default cap of a request body (``[agent_api] max_body``): a note and a few fields, never a file."""
LEEWAY_SECONDS = 30
"""Clock skew allowed between the signer and cxbridge on ``exp``."""
MAX_APP_TOKEN_SECONDS = 3600
"""A signed app request whose ``exp`` lies further ahead than this is refused: a short-lived signature."""
SESSION_MINUTES = 60
SESSION_ISSUER = "cxbridge"
SESSION_AUDIENCE = "cxbridge-agent-api"
APP_ALGORITHMS = ["RS256"]
SESSION_ALGORITHMS = ["HS256"]
_USER_URL = re.compile(r"/users/(\d{1,20})(?:\.json)?$")


@dataclass(frozen=True)
class AgentApiSettings:
    """``[agent_api]``: the app's public keys, the account (issuer) and installation (audience) its signed requests
    must name, the session secrets and lifetime, the built app's folder, the browser origins, the body cap."""

    app_public_keys: tuple[Secret, ...]
    issuer: str
    audience: str
    session_secrets: tuple[Secret, ...]
    session_minutes: int = SESSION_MINUTES
    app_dir: str = ""
    origins: tuple[str, ...] = ()
    max_body: int = MAX_AGENT_BODY

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> AgentApiSettings | None:
        """The settings, or None when no public key is configured (the API is then not served); a ConfigError when
        a key is set without what a token is checked against (issuer, audience) or sessions are signed with."""
        keys = tuple(s for s in section.get("app_public_keys") or [] if isinstance(s, Secret) and s)
        if not keys:
            return None
        issuer = str(section.get("issuer") or "").rstrip("/")
        audience = str(section.get("audience") or "")
        sessions = tuple(s for s in section.get("session_secrets") or [] if isinstance(s, Secret) and s)
        missing = [
            name
            for name, value in (("issuer", issuer), ("audience", audience), ("session_secrets", sessions))
            if not value
        ]
        if missing:
            raise ConfigError(
                f"[agent_api] needs {', '.join(missing)} beside app_public_keys: issuer is your helpdesk account's "
                "URL, audience the app installation's URL, session_secrets the key cxbridge signs agent sessions with"
            )
        if not urlsplit(issuer).netloc:
            raise ConfigError(f"[agent_api] issuer must be your helpdesk account's URL (https://...), got {issuer!r}")
        for secret in sessions:
            if len(secret.reveal()) < 32:
                raise ConfigError("[agent_api] session_secrets: each secret needs at least 32 characters")
        origins = tuple(str(o).rstrip("/") for o in section.get("origins") or [] if o)
        if not origins:
            parts = urlsplit(issuer)
            origins = (f"{parts.scheme}://{parts.netloc}",)
        return cls(
            app_public_keys=keys,
            issuer=issuer,
            audience=audience,
            session_secrets=sessions,
            session_minutes=int(section.get("session_minutes") or SESSION_MINUTES),
            app_dir=str(section.get("app_dir") or ""),
            origins=origins,
            max_body=int(section.get("max_body") or MAX_AGENT_BODY),
        )


class AgentAuthError(Exception):
    """A request that does not prove an agent (401); the message says what is wrong, never a secret."""


def _host(value: str) -> str:
    return urlsplit(value if "://" in value else f"https://{value}").netloc.lower()


def _decode(token: str, keys: tuple[Secret, ...], algorithms: list[str], **options: Any) -> dict[str, Any]:
    """The claims of ``token`` verified with the first of ``keys`` whose signature matches, or AgentAuthError."""
    if not token:
        raise AgentAuthError("open the app from the helpdesk: the request carries no token")
    for key in keys:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.reveal(), algorithms=algorithms, leeway=LEEWAY_SECONDS, **options
            )
            return claims
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise AgentAuthError("the token has expired: reload the app") from None
        except jwt.InvalidAudienceError:
            raise AgentAuthError("the token was signed for another audience than this cxbridge expects") from None
        except jwt.InvalidIssuerError:
            raise AgentAuthError("the token was issued by another issuer than the one configured") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AgentAuthError(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise AgentAuthError(f"the token is not signed with {'/'.join(algorithms)}") from None
        except jwt.PyJWTError as exc:
            raise AgentAuthError(f"the token is malformed ({type(exc).__name__})") from None
    raise AgentAuthError("the token's signature does not match the configured key")


def verify_app_token(token: str, settings: AgentApiSettings, *, now: float | None = None) -> str:
    """The helpdesk user id a signed app request names, once its RS256 signature (with one of the app's public
    keys), ``aud`` (the configured installation), ``iss`` (the configured account), ``exp`` and lifetime are checked.

    ``sub`` is the URL of the user's API record on the configured account (``.../users/<id>.json``) or the bare id.
    """
    claims = _decode(
        token,
        settings.app_public_keys,
        APP_ALGORITHMS,
        audience=settings.audience,
        options={"require": ["exp", "iss", "aud", "sub"], "verify_iss": False},
    )
    account = _host(settings.issuer)
    if not isinstance(claims.get("iss"), str) or _host(claims["iss"]) != account:
        raise AgentAuthError("the token was issued by another helpdesk account than the one configured")
    clock = time.time() if now is None else now
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp - clock > MAX_APP_TOKEN_SECONDS + LEEWAY_SECONDS:
        raise AgentAuthError(f"the token is valid for longer than {MAX_APP_TOKEN_SECONDS} seconds")
    sub = str(claims.get("sub") or "")
    if sub.isdigit():
        return sub
    found = _USER_URL.search(urlsplit(sub).path) if _host(sub) == account else None
    if found is None:
        raise AgentAuthError("the token names no user of the configured helpdesk account")
    return found.group(1)


def issue_session(agent: Person, user_id: str, settings: AgentApiSettings, *, now: float | None = None) -> str:
    """A cxbridge session token for ``agent`` (helpdesk user ``user_id``): HS256 with the first session secret."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": SESSION_ISSUER,
        "aud": SESSION_AUDIENCE,
        "sub": user_id,
        "email": agent.email,
        "name": agent.name,
        "iat": issued,
        "exp": issued + settings.session_minutes * 60,
    }
    return jwt.encode(claims, settings.session_secrets[0].reveal(), algorithm="HS256")


def verify_session(token: str, settings: AgentApiSettings, *, now: float | None = None) -> Person:
    """The agent a cxbridge session token is bound to, once its signature, issuer, audience and expiry are checked
    (and its lifetime is no longer than ``session_minutes``)."""
    claims = _decode(
        token,
        settings.session_secrets,
        SESSION_ALGORITHMS,
        audience=SESSION_AUDIENCE,
        issuer=SESSION_ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    clock = time.time() if now is None else now
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp - clock > settings.session_minutes * 60 + LEEWAY_SECONDS:
        raise AgentAuthError(f"the session is valid for longer than {settings.session_minutes} minutes")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise AgentAuthError("the session names no agent email")
    name = claims.get("name")
    return Person(name=name if isinstance(name, str) else None, email=email)
