"""``scripts/fetch-specs``: the vendors' API descriptions from a local mirror (``CXBRIDGE_SPECS_MIRROR``), every file
checked against its pinned SHA-256 in ``scripts/specs.lock``; a tampered or unreachable source keeps nothing.

The mirror is a loopback HTTP server over the specs folder the suite reads (skipped when there is none)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cxbridge.testing import SpecsMissing, specs_dir

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "fetch-specs"
LOCK = ROOT / "scripts" / "specs.lock"


def pinned() -> dict[str, str]:
    """path -> sha256 from the lock."""
    rows = [line.split("\t") for line in LOCK.read_text(encoding="utf-8").splitlines() if line and line[0] != "#"]
    return {path: sha for sha, path, _url in rows}


@pytest.fixture
def mirror_of() -> Iterator[Any]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def fetch(dest: Path, mirror: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CXBRIDGE_SPECS_MIRROR": mirror}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(dest)], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_the_lock_pins_what_the_shared_sums_say() -> None:
    """Every file of the specs folder's SHA256SUMS is pinned in the lock with the same hash (when the folder has
    the sums), and every URL is https at a fixed commit or version."""
    sums = specs_dir() / "SHA256SUMS"
    if sums.is_file():
        rows = [line.split() for line in sums.read_text().splitlines() if line]
        shared = {path.removeprefix("./"): sha for sha, path in rows}
        assert shared == pinned()
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            assert line.split("\t")[2].startswith("https://")


def test_a_local_mirror_fills_the_folder_with_verified_files(tmp_path: Path, mirror_of: Any) -> None:
    source = specs_dir()
    files = pinned()
    if not all((source / path).is_file() for path in files):
        raise SpecsMissing("the specs folder does not hold every pinned file")
    url = mirror_of(source)
    dest = tmp_path / "specs"
    done = fetch(dest, url)
    assert done.returncode == 0, done.stderr
    assert f"{len(files)} downloaded, 0 already there, all verified" in done.stdout
    for path, sha in files.items():
        assert hashlib.sha256((dest / path).read_bytes()).hexdigest() == sha
    again = fetch(dest, url)
    assert f"0 downloaded, {len(files)} already there" in again.stdout


def test_a_tampered_file_is_refused_and_not_kept(tmp_path: Path, mirror_of: Any) -> None:
    source = specs_dir()
    files = pinned()
    if not all((source / path).is_file() for path in files):
        raise SpecsMissing("the specs folder does not hold every pinned file")
    bad = tmp_path / "mirror"
    shutil.copytree(source, bad)
    first = next(iter(files))
    (bad / first).write_bytes((bad / first).read_bytes() + b" ")
    dest = tmp_path / "specs"
    done = fetch(dest, mirror_of(bad))
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert f"{first} from " in line
    assert "expected" in line
    assert "not kept" in line
    assert not (dest / first).exists()


def test_an_unreachable_source_fails_in_one_line(tmp_path: Path) -> None:
    done = fetch(tmp_path / "specs", "http://127.0.0.1:9/")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("fetch-specs: cannot download ")
