"""Connect-time address checks: a configured host that resolves to an internal address is never connected to.

The base URL check (``urls.check_base_url``) looks at names; this looks at the addresses they resolve to,
to defeat DNS rebinding (RELIABILITY.md section 5, Advocate's design). Every address a host resolves to is
checked before connecting, and the peer address of the socket actually opened is checked again before
anything is sent. Sessions the client creates mount ``GuardedAdapter``; traffic through a configured proxy
is the proxy's business and is not checked here.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, ClassVar

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from .transport import DirectAdapter


class BlockedAddress(urllib3.exceptions.NewConnectionError):
    """The host resolved to an address cxbridge must not connect to: nothing was sent; retrying is useless."""


class AddressPolicy:
    """Which resolved addresses may be connected to.

    ``allow_private=False`` (vendor clouds): only globally routable unicast addresses.
    ``allow_private=True`` (self-hosted products on an internal network, e.g. Jira Data Center): private
    ranges are allowed, but never loopback, link-local (169.254.0.0/16 holds cloud metadata services),
    unspecified, multicast or reserved addresses.
    """

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    def refuses(self, address: str) -> str | None:
        """Why ``address`` is refused, or None when it may be connected to."""
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
        except ValueError:
            return "not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for name in ("loopback", "link_local", "unspecified", "multicast", "reserved"):
            if getattr(ip, f"is_{name}"):
                return f"a {name.replace('_', '-')} address"
        if not self.allow_private and not ip.is_global:
            return "not a public address"
        return None

    def check_resolved(self, host: str, port: int, conn: Any) -> None:
        """Raise ``BlockedAddress`` when any address ``host`` resolves to is refused (urllib3's
        ``NameResolutionError`` when it does not resolve); ``conn`` is the connection, for the error."""
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(host, conn, exc) from exc
        for info in infos:
            reason = self.refuses(str(info[4][0]))
            if reason:
                raise BlockedAddress(conn, f"refusing to connect to {host}: it resolves to {reason}")

    def check_peer(self, sock: socket.socket, conn: Any) -> None:
        """Close ``sock`` and raise ``BlockedAddress`` when the address it is connected to is refused (the host
        resolved again between ``check_resolved`` and the connect)."""
        try:
            peer = str(sock.getpeername()[0])
        except OSError:
            peer = ""
        reason = self.refuses(peer) if peer else None
        if reason:
            sock.close()
            raise BlockedAddress(conn, f"refusing to talk to {conn.host}: it connected to {reason}")


class _GuardedConnectionMixin:
    """Checks the resolved and the connected addresses around urllib3's ``_new_conn``."""

    address_policy: ClassVar[AddressPolicy]

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        self.address_policy.check_resolved(conn._dns_host, conn.port, conn)
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        self.address_policy.check_peer(sock, conn)
        return sock


class GuardedAdapter(DirectAdapter):
    """A requests adapter whose direct connections obey an ``AddressPolicy``: those it opens itself
    (``DirectAdapter``) and those of the urllib3 pools it leaves some requests to."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        super().__init__(policy, **kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        attrs = {"address_policy": self.policy}
        http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, urllib3.connection.HTTPConnection), attrs)
        https_conn = type(
            "GuardedHTTPSConnection", (_GuardedConnectionMixin, urllib3.connection.HTTPSConnection), attrs
        )
        http_pool = type("GuardedHTTPPool", (urllib3.connectionpool.HTTPConnectionPool,), {"ConnectionCls": http_conn})
        https_pool = type(
            "GuardedHTTPSPool", (urllib3.connectionpool.HTTPSConnectionPool,), {"ConnectionCls": https_conn}
        )
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}


def guarded_session(policy: AddressPolicy) -> requests.Session:
    """A new session whose http and https connections obey ``policy``."""
    session = requests.Session()
    session.mount("https://", GuardedAdapter(policy))
    session.mount("http://", GuardedAdapter(policy))
    return session
