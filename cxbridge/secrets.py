"""Secrets: read from the environment or a file, never printed, never stored."""

from __future__ import annotations

import threading
from collections.abc import Iterable

REDACTED = "***"


class Secret:
    """A credential whose ``repr`` and ``str`` never show its value; call ``reveal()`` at the point of use.

    Every Secret created is remembered (by value) so that the one redaction choke point can scrub it from
    logs, exception text and dead letters even where it appears unlabelled.
    """

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "inline") -> None:
        self._value = value
        self._source = source
        if value:
            _registry.add(value)

    def reveal(self) -> str:
        """The secret's value, for the single place that needs it (an auth header, an HMAC key)."""
        return self._value

    @property
    def source(self) -> str:
        """Where the value came from (``env:NAME`` or ``file:path``), safe to show."""
        return self._source

    def __repr__(self) -> str:
        return f"Secret({REDACTED}, source={self._source!r})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


class _Registry:
    """Process-wide set of secret values, read by the redactor.

    ``version`` changes whenever a value is added, so that a reader may keep what it derived from the values (the
    redactor's compiled forms) until the set changes; the values, longest first, are sorted once per change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._sorted: tuple[str, ...] = ()
        self.version = 0

    def add(self, value: str) -> None:
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            # longest first, so a secret that contains another is scrubbed whole
            self._sorted = tuple(sorted(self._values, key=len, reverse=True))
            self.version += 1

    def snapshot(self) -> tuple[int, tuple[str, ...]]:
        """The version and the values, longest first, read together."""
        with self._lock:
            return self.version, self._sorted

    def values(self) -> list[str]:
        return list(self.snapshot()[1])


_registry = _Registry()


def known_secret_values() -> list[str]:
    """Every secret value this process has loaded, longest first."""
    return _registry.values()


def secret_values_version() -> int:
    """A number that changes whenever a secret value is registered: what a reader deriving something from the
    values (the redactor's compiled forms) keys its cache on. Read without the lock: once a registration has
    returned, every later read sees its new version."""
    return _registry.version


def secret_values_snapshot() -> tuple[int, tuple[str, ...]]:
    """The registry's version and its values, longest first, read together."""
    return _registry.snapshot()


def register_secret_values(values: Iterable[str]) -> None:
    """Tell the redactor about values that are secret but did not arrive as a Secret (e.g. a derived token)."""
    for value in values:
        if value:
            _registry.add(value)
