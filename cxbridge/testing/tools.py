"""Stand-ins for time and the outside world: a settable ``Clock``, ``Sleeps``, a loopback webhook ``Receiver``,
and ``SandboxRuntimes`` (Runtimes built on the emulators, the way the end-to-end tests do)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

    from ..plugins import Plugins
    from ..runtime import Runtime
    from ..sandbox.modes import Vendors


class Sleeps(list[float]):
    """A ``sleep=`` for an HTTP client that records the seconds it was asked to wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Clock:
    """A clock the test sets (``clock.now = ...``) and moves (``advance``) by hand, for emulators and stores."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self.now += seconds


@dataclass(frozen=True)
class Delivery:
    """One request a ``Receiver`` got: its method, full URL, path, headers (names case-insensitive) and raw body."""

    method: str
    url: str
    path: str
    headers: Headers
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8")


class Receiver:
    """A loopback webhook receiver: an HTTP server on 127.0.0.1 (a free port) that records every request it gets.

    ``url`` is its address ending in ``path``; each request is answered ``status`` with an empty body and appended
    to ``deliveries``. Use it as a context manager (or call ``stop()``), so the server always stops.
    """

    def __init__(self, path: str = "/hook", *, status: int = 204) -> None:
        from werkzeug.serving import make_server

        self.status = status
        self.deliveries: list[Delivery] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        from werkzeug.datastructures import Headers
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        self.deliveries.append(
            Delivery(request.method, request.url, request.path, Headers(request.headers), request.get_data())
        )
        return Response(status=self.status)(environ, start_response)

    def payloads(self) -> list[Any]:
        """The JSON bodies of the deliveries that had a body, in order."""
        return [json.loads(d.body) for d in self.deliveries if d.body]

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SandboxRuntimes:
    """Writes sandbox configs into a folder and builds Runtimes on them; ``close()`` closes every one built.

    ``runtimes(vendors, extra={"sync": {...}})`` is a Runtime on a fresh ``cxbridge.toml`` for the running
    emulators; ``systems={"zendesk": {"max_retries": 0}}`` sets keys of ``[systems.<name>]`` tables; ``clock``
    opens the store on that clock. ``config()`` only writes the file; ``load(path)`` builds a Runtime on one.
    ``store`` (settable) is the ``[cxbridge] store`` of every config written: None for a SQLite file beside it,
    or a ``postgresql://`` URL.
    """

    def __init__(self, folder: Path, *, store: str | None = None) -> None:
        self.folder = Path(folder)
        self.store = store
        self.made: list[Runtime] = []

    def config(
        self,
        vendors: Vendors,
        *,
        extra: Mapping[str, Any] | None = None,
        systems: Mapping[str, Mapping[str, Any]] | None = None,
        name: str = "cxbridge.toml",
    ) -> Path:
        """A config at ``folder / name`` for the running emulators, with ``extra`` sections and system keys."""
        import tomlkit

        from ..sandbox.modes import write_config

        path = write_config(vendors, self.folder / name, extra=extra, store=self.store)
        if systems:
            doc = tomlkit.parse(path.read_text(encoding="utf-8"))
            tables: Any = doc["systems"]
            for system, values in systems.items():
                for key, value in values.items():
                    tables[system][key] = value
            path.write_text(tomlkit.dumps(doc), encoding="utf-8")
        return path

    def load(self, path: Path, *, plugins: Plugins | None = None, clock: Callable[[], float] | None = None) -> Runtime:
        """A Runtime on the config at ``path``, with the given plugins (else the installed ones)."""
        from ..config import load_config
        from ..plugins import build_plugins
        from ..runtime import Runtime
        from ..store import open_store

        plugins = plugins if plugins is not None else build_plugins()
        config = load_config(path, plugins=plugins)
        store = (
            open_store(config.store_location(), clock=clock, password=config.store_password())
            if clock is not None
            else None
        )
        runtime = Runtime(config, plugins, store=store)
        self.made.append(runtime)
        return runtime

    def __call__(
        self,
        vendors: Vendors,
        *,
        extra: Mapping[str, Any] | None = None,
        systems: Mapping[str, Mapping[str, Any]] | None = None,
        clock: Callable[[], float] | None = None,
        name: str = "cxbridge.toml",
    ) -> Runtime:
        """A Runtime on a config written by ``config()`` (``clock``: the store's clock)."""
        return self.load(self.config(vendors, extra=extra, systems=systems, name=name), clock=clock)

    def close(self) -> None:
        """Close every Runtime built here (a Runtime closed already is closed again harmlessly)."""
        for runtime in self.made:
            runtime.close()
