"""``cxbridge zendesk-app build``: the sidebar app checked, the ZAF SDK vendored from npm, a zip to upload."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from cxbridge_zendesk.app_build import SDK_PACKAGE, build_app, bundle_sdk, check_app, default_source
from cxbridge_zendesk.plugin import register_commands

from cxbridge.sdk import CxbridgeError

URL = "https://cxbridge.acme.example"


def sdk_tarball(folder: Path, *, name: str = SDK_PACKAGE, files: dict[str, str] | None = None) -> Path:
    """An npm tarball laid out like the SDK's (package/package.json, package/lib/*.js as CommonJS modules)."""
    files = files or {
        "lib/index.js": "var Client = require('./client');\nmodule.exports = { init: function () { return 1; } };",
        "lib/client.js": "var U = require('./utils');\nfunction Client() { this.k = U; }\nmodule.exports = Client;",
        "lib/utils.js": "module.exports = { kind: 'zaf' };",
    }
    path = folder / f"{name}-2.0.11.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in {"package.json": json.dumps({"name": name, "version": "2.0.11"}), **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_the_app_in_the_repository_passes_the_checks() -> None:
    """The committed app is a ZAF v2 ticket sidebar app loaded from cxbridge with Zendesk's signed request; the
    build writes the real cxbridge URL in place of the reserved .invalid one."""
    assert check_app(default_source()) == []
    manifest = json.loads((default_source() / "manifest.json").read_text())
    assert manifest["location"]["support"]["ticket_sidebar"]["url"] == "https://cxbridge.invalid/agent/app"
    assert manifest["signedUrls"] is True
    assert manifest["frameworkVersion"] == "2.0"


def test_build_writes_a_zip_with_the_vendored_sdk_and_the_cxbridge_host(tmp_path: Path) -> None:
    built = build_app(default_source(), tmp_path / "dist", url=URL, sdk_tarball=sdk_tarball(tmp_path))
    assert built.zip_path == tmp_path / "dist" / "cxbridge-zendesk-1.0.0.zip"
    with zipfile.ZipFile(built.zip_path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        sdk = archive.read("assets/zaf_sdk.js").decode()
        page = archive.read("assets/iframe.html").decode()
    assert names == {
        "manifest.json",
        "translations/en.json",
        "assets/iframe.html",
        "assets/app.js",
        "assets/app.css",
        "assets/zaf_sdk.js",
        "assets/logo.png",
        "assets/logo-small.png",
    }
    assert manifest["location"]["support"]["ticket_sidebar"]["url"] == URL + "/agent/app"
    assert manifest["signedUrls"] is True
    assert "domainWhitelist" not in manifest
    assert manifest["parameters"] == []  # no secret in the app: Zendesk signs with the app's own key pair
    assert 'window.ZAFClient = require("lib/index.js")' in sdk
    assert 'require("lib/client.js")' in sdk
    assert 'require("lib/utils.js")' in sdk
    assert "https://" not in page  # nothing from a CDN at run time
    assert built.sdk_version == "2.0.11"
    again = build_app(default_source(), tmp_path / "again", url=URL, sdk_tarball=sdk_tarball(tmp_path))
    assert again.zip_path.read_bytes() == built.zip_path.read_bytes()  # the same sources give the same zip


def test_the_bundle_refuses_another_package_or_a_missing_module(tmp_path: Path) -> None:
    with pytest.raises(CxbridgeError, match="is not the zendesk_app_framework_sdk package"):
        bundle_sdk(sdk_tarball(tmp_path, name="left-pad"))
    broken = sdk_tarball(tmp_path, files={"lib/index.js": "module.exports = require('./gone');"})
    with pytest.raises(CxbridgeError, match=r"requires \./gone"):
        bundle_sdk(broken)


def test_a_broken_app_is_refused_with_each_problem(tmp_path: Path) -> None:
    source = tmp_path / "app"
    shutil.copytree(default_source(), source)
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["parameters"] = [{"name": "token", "type": "text", "secure": True}]
    manifest["signedUrls"] = False
    (source / "manifest.json").write_text(json.dumps(manifest))
    page = source / "assets" / "iframe.html"
    page.write_text(
        page.read_text().replace(
            "zaf_sdk.js", "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
        )
    )
    with pytest.raises(CxbridgeError) as info:
        build_app(source, tmp_path / "dist", url=URL, sdk_tarball=sdk_tarball(tmp_path))
    message = str(info.value)
    assert "'token' is secure, but the app has no secret to keep" in message
    assert "the parameter 'token' has no label" in message
    assert "from another site" in message
    problems = check_app(source)
    assert "manifest.json: signedUrls must be true (Zendesk then signs the page request for cxbridge)" in problems
    assert "from another site" in message
    with pytest.raises(CxbridgeError, match="https address"):
        build_app(
            default_source(), tmp_path / "dist", url="http://cxbridge.acme.example", sdk_tarball=sdk_tarball(tmp_path)
        )


def test_the_command_builds_and_says_what_it_checked(tmp_path: Path) -> None:
    """The plugin adds ``zendesk-app build`` to the command line; it builds and says what it checked."""
    cli = click.Group("cxbridge")
    register_commands(cli)
    assert set(cli.commands) == {"zendesk-app"}
    result = CliRunner().invoke(
        cli,
        [
            "zendesk-app",
            "build",
            "--url",
            URL,
            "--out",
            str(tmp_path / "dist"),
            "--sdk-tarball",
            str(sdk_tarball(tmp_path)),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "built " in result.output
    assert f"ticket_sidebar at {URL}/agent/app, signedUrls true" in result.output
    assert "not run: zcli apps:validate" in result.output
    assert (tmp_path / "dist" / "cxbridge-zendesk-1.0.0.zip").is_file()
