"""``cxbridge zendesk-app build``: the ticket sidebar app (``apps/zendesk``) as a zip ready to upload to Zendesk.

The build checks the app against the rules Zendesk documents for a ZAF v2 app (manifest keys, the sidebar
location: cxbridge's ``/agent/app``, loaded by Zendesk with a signed request, ``signedUrls: true``; the page that
cxbridge serves there under ``assets/``, labels for every parameter in the default locale's translations, no script
or stylesheet loaded from another site), vendors the ZAF SDK from the ``zendesk_app_framework_sdk`` npm package
(bundled from its CommonJS sources into ``assets/zaf_sdk.js``, so nothing is loaded from a CDN at run time), and
writes the zip. Zendesk's own ``zcli apps:validate`` posts the package to an account's ``/api/v2/apps/validate``:
with ``--zcli`` (and zcli's ZENDESK_SUBDOMAIN, ZENDESK_EMAIL, ZENDESK_API_TOKEN) the build runs it on the result.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from cxbridge.sdk import CxbridgeError

SDK_PACKAGE = "zendesk_app_framework_sdk"
SDK_VERSION = "2.0.11"
"""The ZAF SDK release vendored (the npm package's latest 2.0 release)."""
SDK_ENTRY = "lib/index.js"
SDK_FILE = "zaf_sdk.js"
PAGE = "assets/iframe.html"
"""The sidebar's page: cxbridge serves it (``[agent_api] app_dir`` = the built folder) at ``/agent/app``."""
APP_PATH = "/agent/app"
_REQUIRE = re.compile(r"""require\(\s*['"](\.{1,2}/[^'"]+)['"]\s*\)""")


@dataclass
class BuiltApp:
    """A built app: the zip, the folder it was made from, the SDK vendored and what was checked."""

    zip_path: Path
    folder: Path
    sdk_version: str
    files: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def default_source() -> Path:
    """``apps/zendesk`` of the checkout this plugin runs from."""
    return Path(__file__).resolve().parents[3] / "apps" / "zendesk"


class _Assets(HTMLParser):
    """The scripts and stylesheets a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.urls.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.urls.append(str(values["href"]))


def check_app(folder: Path) -> list[str]:
    """What is wrong with the app in ``folder`` (empty when it follows the ZAF v2 rules cxbridge relies on)."""
    problems: list[str] = []
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"manifest.json cannot be read: {exc}"]
    for key in ("name", "author", "defaultLocale", "location", "version", "frameworkVersion"):
        if key not in manifest:
            problems.append(f"manifest.json lacks {key!r}")
    if manifest.get("frameworkVersion") != "2.0":
        problems.append("manifest.json: frameworkVersion must be '2.0'")
    author = manifest.get("author") or {}
    if not author.get("name") or not author.get("email"):
        problems.append("manifest.json: author needs a name and an email")
    sidebar = ((manifest.get("location") or {}).get("support") or {}).get("ticket_sidebar")
    url = sidebar.get("url") if isinstance(sidebar, dict) else sidebar
    remote = urlsplit(url) if isinstance(url, str) else None
    if remote is None or remote.scheme != "https" or not remote.path.endswith(APP_PATH):
        problems.append(
            f"manifest.json: location.support.ticket_sidebar must be cxbridge's https://.../agent/app, got {url!r} "
            "(the build writes it from --url)"
        )
    if manifest.get("signedUrls") is not True:
        problems.append("manifest.json: signedUrls must be true (Zendesk then signs the page request for cxbridge)")
    if not (folder / PAGE).is_file():
        problems.append(f"{PAGE} is missing: cxbridge serves it at {APP_PATH}")
    else:
        parser = _Assets()
        parser.feed((folder / PAGE).read_text(encoding="utf-8"))
        for asset in parser.urls:
            if urlsplit(asset).scheme or asset.startswith("//"):
                problems.append(f"{PAGE} loads {asset} from another site (assets are vendored, no CDN)")
            elif asset != SDK_FILE and not (folder / "assets" / asset).is_file():
                problems.append(f"{PAGE} loads {asset}, which is not in assets/")
    parameters = {p.get("name"): p for p in manifest.get("parameters") or [] if isinstance(p, dict)}
    for name, parameter in parameters.items():
        if parameter.get("secure"):
            problems.append(f"manifest.json: the parameter {name!r} is secure, but the app has no secret to keep")
    locale = manifest.get("defaultLocale") or "en"
    try:
        translations = json.loads((folder / "translations" / f"{locale}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [*problems, f"translations/{locale}.json cannot be read: {exc}"]
    app = translations.get("app") or {}
    if not app.get("name") or not app.get("short_description"):
        problems.append(f"translations/{locale}.json: app.name and app.short_description are needed")
    labels = app.get("parameters") or {}
    for pname in parameters:
        if not (labels.get(pname) or {}).get("label"):
            problems.append(f"translations/{locale}.json: the parameter {pname!r} has no label")
    return problems


def fetch_sdk(into: Path, *, npm: str = "npm", version: str = SDK_VERSION) -> Path:
    """The SDK's npm tarball, downloaded with ``npm pack`` into ``into``."""
    exe = shutil.which(npm)
    if exe is None:
        raise CxbridgeError(f"npm is not installed: install it, or pass --sdk-tarball ({SDK_PACKAGE}-{version}.tgz)")
    done = subprocess.run(  # noqa: S603 - a fixed command line, no shell
        [exe, "pack", f"{SDK_PACKAGE}@{version}", "--pack-destination", str(into)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tarballs = sorted(into.glob(f"{SDK_PACKAGE}-*.tgz"))
    if done.returncode != 0 or not tarballs:
        raise CxbridgeError(f"npm pack {SDK_PACKAGE}@{version} failed: {(done.stderr or done.stdout).strip()[-400:]}")
    return tarballs[-1]


def bundle_sdk(tarball: Path) -> tuple[str, str]:
    """The SDK as one browser script defining ``window.ZAFClient``, and its version, from the npm tarball.

    The package ships CommonJS modules (``lib/index.js`` requiring ``./client``...): each is wrapped in a function
    and the relative ``require`` calls are resolved among them, as a bundler would.
    """
    modules: dict[str, str] = {}
    version = ""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive.getmembers():
                if not member.isfile():
                    continue
                name = member.name.split("/", 1)[1] if "/" in member.name else member.name
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                if name == "package.json":
                    meta = json.loads(handle.read().decode("utf-8"))
                    if meta.get("name") != SDK_PACKAGE:
                        raise CxbridgeError(f"{tarball.name} is not the {SDK_PACKAGE} package")
                    version = str(meta.get("version") or "")
                elif name.startswith("lib/") and name.endswith(".js"):
                    modules[name] = handle.read().decode("utf-8")
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise CxbridgeError(f"{tarball}: not a readable npm package ({exc})") from None
    if SDK_ENTRY not in modules or not version:
        raise CxbridgeError(f"{tarball.name}: {SDK_ENTRY} or the version is missing")
    parts = [f"/* {SDK_PACKAGE} {version} (Apache-2.0), bundled by cxbridge zendesk-app build */", "(function () {"]
    parts.append("var defs = {}, cache = {};")
    for name, source in sorted(modules.items()):
        base = name.rsplit("/", 1)[0]

        def resolve(match: re.Match[str], base: str = base, origin: str = name) -> str:
            target = _join(base, match.group(1))
            if target not in modules:
                raise CxbridgeError(f"{origin} requires {match.group(1)}, which the package does not hold")
            return f"require({json.dumps(target)})"

        body = _REQUIRE.sub(resolve, source)
        parts.append(f"defs[{json.dumps(name)}] = function (module, exports, require, global) {{\n{body}\n}};")
    parts.append(
        "function require(name) {"
        " if (!cache[name]) { var module = { exports: {} }; cache[name] = module;"
        " defs[name].call(module.exports, module, module.exports, require, window); }"
        " return cache[name].exports; }"
    )
    parts.append(f"window.ZAFClient = require({json.dumps(SDK_ENTRY)});")
    parts.append("})();")
    return "\n".join(parts) + "\n", version


def _join(base: str, relative: str) -> str:
    segments = base.split("/")
    for piece in relative.split("/"):
        if piece == "..":
            segments.pop()
        elif piece not in (".", ""):
            segments.append(piece)
    path = "/".join(segments)
    return path if path.endswith(".js") else f"{path}.js"


def build_app(
    source: Path,
    out: Path,
    *,
    url: str,
    sdk_tarball: Path | None = None,
    npm: str = "npm",
) -> BuiltApp:
    """Check ``source``, point the sidebar at cxbridge's ``/agent/app`` (signed by Zendesk), vendor the SDK and
    write ``out/cxbridge-zendesk-<version>.zip`` with the folder it was made from beside it."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise CxbridgeError(f"--url must be the https address of your cxbridge server, got {url!r}")
    if not (source / "manifest.json").is_file():
        raise CxbridgeError(f"{source} holds no manifest.json (pass --source apps/zendesk)")
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "app"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("tmp", ".*", SDK_FILE))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["location"]["support"]["ticket_sidebar"]["url"] = url.rstrip("/") + APP_PATH
    manifest["signedUrls"] = True
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="cxbridge-zaf-") as scratch:
        tarball = sdk_tarball if sdk_tarball is not None else fetch_sdk(Path(scratch), npm=npm)
        script, version = bundle_sdk(tarball)
    (folder / "assets" / SDK_FILE).write_text(script, encoding="utf-8")
    problems = check_app(folder)
    if problems:
        raise CxbridgeError("the app does not pass the checks:\n" + "\n".join(problems))
    zip_path = out / f"cxbridge-zendesk-{manifest['version']}.zip"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))  # the same sources give the same zip
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (folder / name).read_bytes())
    zip_path.write_bytes(buffer.getvalue())
    checks = [
        "manifest keys, frameworkVersion 2.0, no secure parameter",
        f"ticket_sidebar at {url.rstrip('/')}{APP_PATH}, signedUrls true (Zendesk signs the page request RS256)",
        f"{PAGE} (served by cxbridge from [agent_api] app_dir = {folder})",
        f"every script and stylesheet vendored (ZAF SDK {version} from npm, no CDN)",
    ]
    return BuiltApp(zip_path, folder, version, files, checks)


def run_zcli(zcli: str, folder: Path) -> str:
    """``zcli apps:validate`` on a built app folder; its output, or a CxbridgeError with it."""
    exe = shutil.which(zcli)
    if exe is None:
        raise CxbridgeError(f"{zcli} is not installed (npm install -g @zendesk/zcli)")
    done = subprocess.run(  # noqa: S603 - a fixed command line, no shell
        [exe, "apps:validate", str(folder)], capture_output=True, text=True, timeout=300, check=False
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise CxbridgeError(f"zcli apps:validate refused the app: {output[-800:]}")
    return output


@click.group("zendesk-app")
def zendesk_app() -> None:
    """The Zendesk ticket sidebar app of cxbridge (apps/zendesk): build it for upload."""


@zendesk_app.command("build")
@click.option("--url", required=True, metavar="URL", help="The https address of your cxbridge server.")
@click.option(
    "--source",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The app's folder (default: apps/zendesk of this checkout).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Where the zip (and the folder it is made from) go.",
)
@click.option(
    "--sdk-tarball",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"A {SDK_PACKAGE} npm tarball to vendor instead of running 'npm pack' (offline builds).",
)
@click.option("--zcli", "zcli", metavar="PATH", help="Run this zcli's apps:validate on the result (needs an account).")
def build(url: str, source: Path | None, out: Path, sdk_tarball: Path | None, zcli: str | None) -> None:
    """Check the app, vendor the ZAF SDK and write a zip ready to upload (Admin Center > Apps > Upload private app)."""
    built = build_app(source or default_source(), out, url=url, sdk_tarball=sdk_tarball)
    click.echo(f"built {built.zip_path} ({len(built.files)} files, ZAF SDK {built.sdk_version})")
    for line in built.checks:
        click.echo(f"  checked: {line}")
    if zcli:
        click.echo(run_zcli(zcli, built.folder))
    else:
        click.echo("  not run: zcli apps:validate (it uploads to your account; pass --zcli zcli to run it)")


def register(cli: Any) -> None:
    """Add ``zendesk-app`` to the command line."""
    cli.add_command(zendesk_app)
