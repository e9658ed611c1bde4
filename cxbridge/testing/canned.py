"""Connectors against canned answers: ``CannedVendor`` (a vendor played on a ``responses`` mock),
``build_connector`` (a connector on an HTTP client that never sleeps) and ``record_requests``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from .specs import Spec

if TYPE_CHECKING:
    import requests
    import responses

    from ..connectors import Connector
    from ..settings import SystemConfig


class CannedVendor:
    """A vendor played by canned answers on a ``responses`` mock, and what the connector sent to it.

    A test module subclasses it with a ``reply`` that checks each canned body against the vendor's
    description before serving it; ``check_sent`` checks every JSON body the connector sent.
    """

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps

    @property
    def calls(self) -> list[Any]:
        """The calls made so far, in order."""
        return list(self.rsps.calls)

    def sent(self, index: int) -> Any:
        """The JSON body of the n-th request (None when it had none)."""
        body = self.calls[index].request.body
        return json.loads(body) if body else None

    def query(self, index: int) -> dict[str, list[str]]:
        """The query parameters of the n-th request."""
        return parse_qs(urlsplit(self.calls[index].request.url).query)

    def path(self, index: int) -> str:
        """The path of the n-th request."""
        return str(urlsplit(self.calls[index].request.url).path)

    def check_sent(self, spec_for: Callable[[str], Spec], spec_path: Callable[[str], str] = str) -> None:
        """Check every JSON body sent against its operation's request schema.

        ``spec_for(path)`` is the description holding the path; ``spec_path(path)`` the path as it spells it.
        """
        for call in self.rsps.calls:
            request: Any = call.request
            if request.body:
                path = urlsplit(request.url).path
                spec = spec_for(path)
                spec.validate_request(
                    request.method, spec.match_path(request.method, spec_path(path)), json.loads(request.body)
                )


C = TypeVar("C", bound="Connector")


def build_connector(cls: type[C], config: SystemConfig, **http_options: Any) -> C:
    """A connector on an HTTP client for canned answers: the vendor's auth, error parser and cloud domains.

    It never sleeps and counts into its own ``CallCounter`` unless ``sleep=`` or ``counter=`` say otherwise, and
    accepts any https host exactly when the connector's ``allows_any_https_host(config)`` does (a self-hosted
    deployment); other ``HttpClient`` options (``session=``...) are passed on.
    """
    from ..http import CallCounter, HttpClient

    options: dict[str, Any] = {
        "counter": CallCounter(),
        "sleep": lambda seconds: None,
        "allow_any_https_host": cls.allows_any_https_host(config),
        **http_options,
    }
    http = HttpClient(
        config,
        auth=cls.make_auth(config),
        error_message=cls.error_message,
        cloud_domains=cls.cloud_domains,
        **options,
    )
    return cls(config, http)


def record_requests(connector: Connector) -> list[requests.PreparedRequest]:
    """Every request the connector's HTTP session sends from now on, in order (as its answers arrive)."""
    seen: list[requests.PreparedRequest] = []
    connector.http.session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    return seen
