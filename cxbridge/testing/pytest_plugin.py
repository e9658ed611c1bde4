"""The kit's pytest plugin, loaded through the ``pytest11`` entry point once ``cxbridge[testing]`` is installed.

Fixtures:

- ``clock``: a ``Clock`` at 2026-01-01T00:00:00Z that only the test moves (``clock.now = ...``, ``advance``);
- ``sleeps``: a ``Sleeps`` to pass as ``sleep=``; it records the waits instead of waiting;
- ``receiver``: a loopback webhook ``Receiver`` (127.0.0.1, a free port), stopped when the test ends;
- ``sandbox_runtimes``: ``SandboxRuntimes`` in the test's ``tmp_path``; every Runtime built is closed at the end;
- ``fake_world``: a ``FakeWorld`` (the in-memory helpdesk, CRM and tracker records behind the fakes);
- ``fake_runtimes``: ``fake_runtimes(world, extra=...)`` is a Runtime on the three fakes in ``tmp_path``
  (``fake_runtime``); every Runtime built is closed at the end;
- ``specs``: the vendors' API descriptions (``specs("zendesk")`` is a ``Spec``); the test fails with a message
  saying where they are looked for when they are missing.

A test module or conftest may define a fixture of the same name; pytest then uses that one for its tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .fakes import FakeWorld, fake_runtime
from .specs import SPECS_ENV, Spec, SpecsMissing, load_spec, spec_files, specs_dir
from .tools import Clock, Receiver, SandboxRuntimes, Sleeps

if TYPE_CHECKING:
    from ..runtime import Runtime


class Specs:
    """The vendors' API descriptions for a test: ``specs("jira")`` is a ``Spec``, ``specs.load(name)`` the parsed
    document, ``specs.dir`` their folder. Missing descriptions fail the test with a clear message."""

    def __init__(self) -> None:
        self.files = spec_files()
        self.names = tuple(self.files)
        try:
            self.dir: Path = specs_dir()
        except SpecsMissing as exc:
            pytest.fail(
                f"cxbridge: the vendors' API descriptions are missing ({exc}). Point {SPECS_ENV} at a folder "
                f"holding {', '.join(sorted(set(self.files.values())))}.",
                pytrace=False,
            )

    def _known(self, name: str) -> None:
        if name not in self.files:
            pytest.fail(f"cxbridge: no vendor description named {name!r} (known: {', '.join(self.names)})")
        if not (self.dir / self.files[name]).is_file():
            pytest.fail(f"cxbridge: {self.dir / self.files[name]} is missing ({SPECS_ENV} names the folder)")

    def __call__(self, name: str) -> Spec:
        """The description ``name`` (a key of ``spec_files()``) as a validating ``Spec``."""
        self._known(name)
        return Spec(name)

    def load(self, name: str) -> dict[str, Any]:
        """The description ``name``, parsed."""
        self._known(name)
        return load_spec(name)


@pytest.fixture
def clock() -> Clock:
    """A settable clock at 2026-01-01T00:00:00Z, for emulators and stores (``clock.advance(60)``)."""
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    """The seconds an HTTP client was asked to sleep, recorded instead of slept (pass it as ``sleep=``)."""
    return Sleeps()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback webhook receiver at ``receiver.url`` (path ``/hook``, answers 204); stopped after the test."""
    with Receiver() as running:
        yield running


@pytest.fixture
def sandbox_runtimes(tmp_path: Path) -> Iterator[SandboxRuntimes]:
    """Sandbox configs and Runtimes in this test's ``tmp_path`` (``sandbox_runtimes(vendors)``); closed at the end."""
    runtimes = SandboxRuntimes(tmp_path)
    yield runtimes
    runtimes.close()


@pytest.fixture
def specs() -> Specs:
    """The vendors' API descriptions (``specs("zendesk").validate_response(...)``); fails clearly when missing."""
    return Specs()


class FakeRuntimes:
    """Runtimes on the fakes, each in its own folder under ``tmp_path``; ``close()`` closes every one built."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: list[Runtime] = []

    def __call__(
        self,
        world: FakeWorld,
        *,
        extra: Mapping[str, Mapping[str, Any]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Runtime:
        """A Runtime on the fakes over ``world`` (``extra``: more config sections; ``clock``: the store's)."""
        folder = self.folder / f"fakes-{len(self.made) + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        runtime = fake_runtime(folder, world, extra=extra, clock=clock)
        self.made.append(runtime)
        return runtime

    def close(self) -> None:
        for runtime in self.made:
            runtime.close()


@pytest.fixture
def fake_world() -> FakeWorld:
    """A fresh ``FakeWorld``: the records, call log and faults of the in-memory fakes."""
    return FakeWorld()


@pytest.fixture
def fake_runtimes(tmp_path: Path) -> Iterator[FakeRuntimes]:
    """Runtimes on the fakes (``fake_runtimes(fake_world)``) in this test's ``tmp_path``; closed at the end."""
    runtimes = FakeRuntimes(tmp_path)
    yield runtimes
    runtimes.close()
