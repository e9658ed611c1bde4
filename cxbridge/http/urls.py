"""Which URLs cxbridge may talk to: base URL checks (an SSRF guard) and the same-origin rule for links."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..errors import ConfigError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = frozenset({"localhost"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_literal(host: str) -> IPAddress | None:
    """The address a host names when it is an IP literal in any spelling a resolver accepts, else None.

    ``socket.inet_aton`` accepts the tricks (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``) that
    ``ipaddress`` refuses, so both are consulted.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, a canonical 127.0.0.0/8 address, or ``::1``."""
    host = host.lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL, lowercased, with the scheme's default port filled in.

    Raises ``ValueError`` for a URL without a scheme or host, or with a port that is not a number.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        raise ValueError(f"not an absolute URL: {url!r}")
    port = parts.port  # raises ValueError for a bad port
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, -1)
    return scheme, host, port


def same_origin(url: str, base_url: str) -> bool:
    """True when ``url`` has exactly the scheme, host and port of ``base_url``; userinfo never matches."""
    try:
        if urlsplit(url).username is not None or "@" in urlsplit(url).netloc:
            return False
        return origin(url) == origin(base_url)
    except ValueError:
        return False


def host_matches(host: str, domains: Iterable[str]) -> bool:
    """True when ``host`` equals an exact entry (``api.hubapi.com``) or ends with a suffix (``.zendesk.com``).

    A suffix entry never matches the bare domain itself (``zendesk.com``) nor a host that merely contains it
    (``x.zendesk.com.evil.com``).
    """
    host = host.lower()
    for entry in domains:
        entry = entry.lower()
        if entry.startswith("."):
            if host.endswith(entry) and len(host) > len(entry):
                return True
        elif host == entry:
            return True
    return False


def check_base_url(
    name: str,
    url: str,
    *,
    sandbox: bool = False,
    cloud_domains: Iterable[str] = (),
    allow_any_https_host: bool = False,
) -> str:
    """Check a configured base URL and return it without a trailing slash, or raise ``ConfigError``.

    The rules (DESIGN.md section 5, RELIABILITY.md section 5):

    - never userinfo, a query or a fragment; the host must be a plain DNS name or (sandbox only) loopback;
    - ``sandbox=True``: http or https, and only loopback (``localhost``, 127.0.0.0/8, ``::1``);
    - otherwise https only, no IP literal in any spelling, no ``localhost``, and the host must equal or end
      with one of ``cloud_domains`` unless ``allow_any_https_host`` (self-hosted products such as Jira DC).
    """
    where = f"systems.{name}.base_url"
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}: expected an https URL")
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        raise ConfigError(f"{where}: the URL contains whitespace, control characters or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ConfigError(f"{where}: credentials in the URL are not allowed; put them in the secret keys")
    if parts.query or parts.fragment or url.rstrip("/").endswith(("?", "#")):
        raise ConfigError(f"{where}: a base URL has no query or fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigError(f"{where}: no host in {url!r}")
    if port == 0:
        raise ConfigError(f"{where}: port 0 is not a valid port")

    if sandbox:
        if scheme not in ("http", "https"):
            raise ConfigError(f"{where}: expected an http or https URL, got {url!r}")
        if not is_loopback_host(host):
            raise ConfigError(
                f"{where}: a system marked sandbox = true must point at loopback "
                f"(localhost, 127.0.0.1 or [::1]), got host {host!r}"
            )
        return url.rstrip("/")

    if scheme != "https":
        raise ConfigError(f"{where}: only https URLs are allowed (plain http only for a sandbox), got {url!r}")
    if ip_literal(host) is not None or ":" in host:
        raise ConfigError(f"{where}: an IP address is not allowed as host; use the system's DNS name")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        raise ConfigError(f"{where}: localhost is only allowed for a system marked sandbox = true")
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ConfigError(f"{where}: {host!r} is not a valid DNS host name")
    if labels[-1].isdigit():
        raise ConfigError(f"{where}: {host!r} is not a valid DNS host name")
    domains = tuple(cloud_domains)
    if not allow_any_https_host and not host_matches(host, domains):
        allowed = ", ".join(("*" + d) if d.startswith(".") else d for d in domains) or "none configured"
        raise ConfigError(f"{where}: host {host!r} is not on the vendor's domains ({allowed})")
    return url.rstrip("/")
