"""Auth for requests that takes ``Secret`` values and tells the redactor about every credential it derives."""

from __future__ import annotations

import base64

import requests
import requests.auth

from ..secrets import Secret, register_secret_values


class BasicAuth(requests.auth.AuthBase):
    """HTTP Basic auth (``Authorization: Basic base64(user:password)``), the password held as a ``Secret``.

    Zendesk API tokens use ``user="agent@example.com/token"``; Jira Cloud uses the account email and an API
    token. The encoded credential is registered as a secret value, so it is redacted wherever it appears.
    """

    def __init__(self, username: str, password: Secret) -> None:
        if not isinstance(password, Secret):
            raise TypeError("BasicAuth takes the password as a cxbridge.secrets.Secret")
        self.username = username
        self._password = password
        token = base64.b64encode(f"{username}:{password.reveal()}".encode()).decode("ascii")
        register_secret_values([token])
        self._header = f"Basic {token}"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self._header
        return r

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` (HubSpot private app tokens, OAuth access tokens, Jira DC PATs)."""

    def __init__(self, token: Secret) -> None:
        if not isinstance(token, Secret):
            raise TypeError("BearerAuth takes the token as a cxbridge.secrets.Secret")
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return r

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"
