"""The kit's pytest plugin, loaded through the ``pytest11`` entry point once ``cxbridge[testing]`` is installed.

Fixtures:

- ``clock``: a ``Clock`` at 2026-01-01T00:00:00Z that only the test moves (``clock.now = ...``, ``advance``);
- ``sleeps``: a ``Sleeps`` to pass as ``sleep=``; it records the waits instead of waiting;
- ``receiver``: a loopback webhook ``Receiver`` (127.0.0.1, a free port), stopped when the test ends;
- ``sandbox_runtimes``: ``SandboxRuntimes`` in the test's ``tmp_path``; every Runtime built is closed at the end;
- ``fake_world``: a ``FakeWorld`` (the in-memory helpdesk, CRM and tracker records behind the fakes);
- ``fake_runtimes``: ``fake_runtimes(world, extra=...)`` is a Runtime on the three fakes in ``tmp_path``
  (``fake_runtime``); every Runtime built is closed at the end;
- ``specs``: the vendors' API descriptions (``specs("zendesk")`` is a ``Spec``).

When the descriptions cannot be found (``CXBRIDGE_SPECS``, ``../shared/specs``, ``.specs/``), every test that reads
them (through ``specs``, ``Spec``, ``load_spec``, also at a module's import) is skipped instead of failing, the
header says so, and the run ends with one summary line; every other test runs.

A test module or conftest may define a fixture of the same name; pytest then uses that one for its tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .fakes import FakeWorld, fake_runtime
from .specs import SPECS_ENV, Spec, SpecsMissing, load_spec, spec_files, specs_dir, specs_missing
from .tools import Clock, Receiver, SandboxRuntimes, Sleeps

if TYPE_CHECKING:
    from ..runtime import Runtime


SKIP_REASON = "the vendors' API descriptions are missing (spec-contract test)"


class _SpecsSkips:
    """Whether the descriptions are missing in this run, and how many tests and modules were skipped for it."""

    def __init__(self) -> None:
        self.why: str | None = None
        self.tests = 0
        self.modules = 0


_SKIPS = pytest.StashKey[_SpecsSkips]()
"""Per run (a pytester run inside a test has its own), on ``config.stash``."""


def _skips_of(config: pytest.Config) -> _SpecsSkips:
    if _SKIPS not in config.stash:
        config.stash[_SKIPS] = _SpecsSkips()
    return config.stash[_SKIPS]


def _raise_skip() -> None:
    """Every skip for missing descriptions is raised from this one line: pytest's summary folds them into one."""
    pytest.skip(SKIP_REASON)


def _skip_for_specs(skips: _SpecsSkips) -> None:
    """Skip the running test."""
    skips.tests += 1
    _raise_skip()


def _skip_location() -> tuple[str, int, str]:
    """Where ``_raise_skip`` raises, as a skip report's ``longrepr`` (path, line, message)."""
    try:
        _raise_skip()
    except pytest.skip.Exception as exc:
        here = Path(__file__).resolve()
        entry = [e for e in pytest.ExceptionInfo.from_exception(exc).traceback if Path(e.path).resolve() == here][-1]
        return str(entry.path), entry.lineno + 1, f"Skipped: {SKIP_REASON}"
    raise AssertionError("pytest.skip did not raise")  # pragma: no cover


def pytest_configure(config: pytest.Config) -> None:
    """Look for the descriptions once per run."""
    _skips_of(config).why = specs_missing()


def pytest_report_header(config: pytest.Config) -> str:
    """Where the vendors' API descriptions come from, or that they are missing."""
    why = _skips_of(config).why
    if why is None:
        return f"cxbridge vendor specs: {specs_dir()}"
    return f"cxbridge vendor specs: MISSING, spec-contract tests will be skipped ({why})"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A test module that reads a description at import is skipped, not an error, when they are missing."""
    report = yield
    skips = _skips_of(collector.config)
    if report.failed and skips.why is not None and "SpecsMissing" in str(report.longrepr):
        report.outcome = "skipped"
        report.longrepr = _skip_location()
        skips.modules += 1
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    """A fixture that reads a missing description skips its test."""
    try:
        return (yield)
    except SpecsMissing:
        skips = _skips_of(item.config)
        if skips.why is None:
            raise
        _skip_for_specs(skips)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """A test that reads a missing description is skipped."""
    try:
        return (yield)
    except SpecsMissing:
        skips = _skips_of(item.config)
        if skips.why is None:
            raise
        _skip_for_specs(skips)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line when spec-contract tests were skipped, saying why and how to get the descriptions."""
    skips = _skips_of(config)
    if skips.why is not None and (skips.tests or skips.modules):
        advice = f"set {SPECS_ENV}, put them at ../shared/specs, or run scripts/fetch-specs"
        why = skips.why if "fetch-specs" in skips.why else f"{skips.why}; {advice}"
        terminalreporter.write_line(
            f"cxbridge: {skips.tests} spec-contract tests and {skips.modules} test modules skipped: {why} "
            "(CXBRIDGE_SPECS_MIRROR names a local mirror)",
            yellow=True,
        )


class Specs:
    """The vendors' API descriptions for a test: ``specs("jira")`` is a ``Spec``, ``specs.load(name)`` the parsed
    document, ``specs.dir`` their folder. Missing descriptions fail the test with a clear message."""

    def __init__(self) -> None:
        self.files = spec_files()
        self.names = tuple(self.files)
        self.dir: Path = specs_dir()  # SpecsMissing: the test is skipped (see above)

    def _known(self, name: str) -> None:
        if name not in self.files:
            pytest.fail(f"cxbridge: no vendor description named {name!r} (known: {', '.join(self.names)})")
        if not (self.dir / self.files[name]).is_file():
            raise SpecsMissing(f"{self.dir / self.files[name]} is missing ({SPECS_ENV} names the folder)")

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
    """The vendors' API descriptions (``specs("zendesk").validate_response(...)``); skips the test when missing."""
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
