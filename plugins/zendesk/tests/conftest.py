"""Fixtures shared by the Zendesk emulator's tests."""

from __future__ import annotations

import pytest
import requests
from cxbridge_zendesk.sandbox.backend import ZendeskBackend


@pytest.fixture
def api(zd: ZendeskBackend) -> requests.Session:
    """A session signed in to the module's ``zd`` emulator as its API-token agent."""
    creds = zd.credentials()
    session = requests.Session()
    session.auth = (f"{creds['email']}/token", creds["api_token"])
    return session
