"""``docs/deploy.md`` and ``deploy/``: the guide's sandbox rehearsal runs as written, the systemd units verify, the
Dockerfile and the compose file hold what the guide promises (docker cannot build here: no daemon)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "deploy.md"
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
DEFAULT_PORT = "8787"
WAIT = 60.0


def rehearsal() -> list[str]:
    """The shell lines of the guide's rehearsal block (the fenced block after ``<!-- rehearsal -->``)."""
    text = GUIDE.read_text(encoding="utf-8")
    block = text.split("<!-- rehearsal -->", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` for each instruction, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
    return out


def healthcheck_argv(port: int) -> list[str]:
    """The Dockerfile's HEALTHCHECK command, on ``port``, run with this interpreter."""
    args = dict(dockerfile_instructions())["HEALTHCHECK"]
    exec_form = args.split("CMD", 1)[1].strip()
    argv = [str(a) for a in yaml.safe_load(exec_form)]
    assert argv[0] == "python"
    return [sys.executable, *[a.replace(DEFAULT_PORT, str(port)) for a in argv[1:]]]


class Shell:
    """Runs the guide's lines in one folder, with the commands' background processes stopped at the end."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.env.pop("CXBRIDGE_CONFIG", None)
        self.background: list[subprocess.Popen[str]] = []

    def argv(self, line: str) -> list[str]:
        return shlex.split(line.rstrip("& ").replace(DEFAULT_PORT, str(self.port)))

    def start(self, line: str) -> subprocess.Popen[str]:
        log = self.folder / f"background-{len(self.background) + 1}.log"
        with log.open("w", encoding="utf-8") as output:  # a file, not a pipe nobody reads: it never fills up
            process = subprocess.Popen(
                self.argv(line), cwd=self.folder, env=self.env, stdout=output, stderr=subprocess.STDOUT, text=True
            )
        self.background.append(process)
        return process

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(line), cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=WAIT, check=False
        )

    def stop(self) -> None:
        for process in reversed(self.background):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    running = Shell(tmp_path, free_port())
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("curl") is None, reason="the guide's rehearsal uses curl")
def test_the_guides_rehearsal_runs_as_written(shell: Shell) -> None:
    """The rehearsal: sandbox serve -> setup --apply -> doctor all green -> serve -> an agent tags a ticket -> the
    worker escalates it (links) -> sync; plus the Dockerfile's HEALTHCHECK against the running serve."""
    lines = rehearsal()
    assert [line.split()[0] for line in lines] == ["cxbridge"] * 4 + ["curl", "cxbridge", "cxbridge"]
    sandbox_line, setup_line, doctor_line, serve_line, curl_line, links_line, sync_line = lines
    assert sandbox_line.startswith("cxbridge sandbox serve ")
    assert sandbox_line.endswith("&")
    assert serve_line.endswith("&")

    sandbox = shell.start(sandbox_line)
    config = shell.folder / "sandbox.toml"
    wait_for("the sandbox's config", lambda: config.exists() and sandbox.poll() is None)
    systems = tomllib.loads(config.read_text(encoding="utf-8"))["systems"]

    setup = shell.run(setup_line)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "nothing left to do" in setup.stdout, setup.stdout
    doctor = shell.run(doctor_line)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    marks = {line[:2] for line in doctor.stdout.splitlines()}
    assert marks <= {"✓ ", "- "}, doctor.stdout
    assert f"✓ webhooks public_urls.zendesk: http://127.0.0.1:{shell.port}/webhooks/zendesk" in doctor.stdout

    shell.start(serve_line)

    def healthy() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{shell.port}/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for("serve's /healthz", healthy)
    probe = subprocess.run(healthcheck_argv(shell.port), capture_output=True, text=True, timeout=30, check=False)
    assert probe.returncode == 0, probe.stderr

    tagged = subprocess.run(
        ["/bin/sh", "-c", curl_line],
        cwd=shell.folder,
        env={**shell.env, "ZENDESK_URL": systems["zendesk"]["base_url"]},
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert tagged.returncode == 0, tagged.stderr

    def linked() -> bool:
        result = shell.run(links_line)
        return result.returncode == 0 and re.search(r"\bENG-\d+\b", result.stdout) is not None

    wait_for("the escalation (links 1 naming an ENG issue)", linked)
    synced = shell.run(sync_line)
    assert synced.returncode == 0, synced.stdout + synced.stderr


# -- systemd ---------------------------------------------------------------------------------------------------

UNITS = ("cxbridge-serve.service", "cxbridge-sync.service", "cxbridge-sync.timer")


def unit_settings(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections and their settings (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in (DEPLOY / "systemd" / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{name}: a setting before any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"{name}: not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_services_are_hardened_and_share_the_store() -> None:
    serve, sync = unit_settings("cxbridge-serve.service"), unit_settings("cxbridge-sync.service")
    for unit in (serve, sync):
        service = unit["Service"]
        assert service["DynamicUser"] == ["yes"]
        assert service["User"] == ["cxbridge"]  # one user: both open the same store
        assert service["ProtectSystem"] == ["strict"]
        assert service["StateDirectory"] == ["cxbridge"]
        assert service["NoNewPrivileges"] == ["yes"]
        assert service["Environment"] == ["CXBRIDGE_CONFIG=/etc/cxbridge/cxbridge.toml"]
        assert "~@privileged" in service["SystemCallFilter"]
    assert serve["Service"]["ExecStart"] == ["/opt/cxbridge/bin/cxbridge serve"]
    assert serve["Install"]["WantedBy"] == ["multi-user.target"]
    assert sync["Service"]["Type"] == ["oneshot"]
    assert sync["Service"]["ExecStart"] == ["/opt/cxbridge/bin/cxbridge sync"]
    timer = unit_settings("cxbridge-sync.timer")
    assert timer["Timer"]["Persistent"] == ["true"]
    assert timer["Timer"]["OnCalendar"] == ["*:0/10"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_units_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts the units without a warning (the binary path pointed at this install)."""
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace("/opt/cxbridge/bin/cxbridge", str(BIN / "cxbridge")), "utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


# -- Docker ------------------------------------------------------------------------------------------------------


def test_the_dockerfile_runs_serve_as_a_non_root_user_with_a_health_check() -> None:
    instructions = dockerfile_instructions()
    words = [word for word, _ in instructions]
    known = {"FROM", "WORKDIR", "COPY", "RUN", "ENV", "USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "CMD", "ARG"}
    assert set(words) <= known, set(words) - known
    assert words[0] == "FROM"
    final = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    user = [args for word, args in final if word == "USER"]
    assert user == ["cxbridge:cxbridge"]
    assert [w for w, _ in final].index("USER") < [w for w, _ in final].index("CMD")
    health = dict(final)["HEALTHCHECK"]
    assert "http://127.0.0.1:8787/healthz" in health
    cmd = yaml.safe_load(dict(final)["CMD"])
    assert cmd == ["cxbridge", "serve", "--host", "0.0.0.0", "--port", "8787"]  # noqa: S104 -- explicit, in-container
    assert ("ENV", "CXBRIDGE_CONFIG=/etc/cxbridge/cxbridge.toml PYTHONUNBUFFERED=1") in final
    for word, args in instructions:  # what the build copies exists
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_the_health_check_command_fails_when_nothing_answers() -> None:
    """The HEALTHCHECK command is a real probe: with nothing listening it exits non-zero."""
    probe = subprocess.run(healthcheck_argv(free_port()), capture_output=True, text=True, timeout=30, check=False)
    assert probe.returncode != 0


def test_compose_publishes_on_loopback_and_shares_the_store() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"serve", "sync"}
    assert services["serve"]["ports"] == ["127.0.0.1:8787:8787"]
    assert "ports" not in services["sync"]
    for service in services.values():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        assert "cxbridge-store:/var/lib/cxbridge" in service["volumes"]
        assert "./cxbridge.toml:/etc/cxbridge/cxbridge.toml:ro" in service["volumes"]
        assert service["read_only"] is True
    assert services["sync"]["healthcheck"] == {"disable": True}
    assert "cxbridge sync" in services["sync"]["entrypoint"][-1]
    assert "cxbridge-store" in compose["volumes"]
