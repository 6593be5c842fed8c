"""`make package` end to end: the bundle, the .deb and the tarball, each run as a user would.

Builds once per session (about two minutes on two cores) into a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uploader import __version__

ROOT = Path(__file__).resolve().parents[2]
DEB_NAME = f"uploader_{__version__}_amd64.deb"
TAR_NAME = f"Uploader-{__version__}-linux-x86_64"
APP_ID = "org.uploader.Uploader"
BUDGET = 140_000_000

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="the Linux packages build on Linux only"
    ),
    # the first test also builds everything (the session fixture), a few minutes
    pytest.mark.timeout(1800),
]


def _tools_missing() -> list[str]:
    tools = ["dpkg-deb", "readelf", "patchelf", "lintian", "desktop-file-validate", "appstreamcli"]
    missing = [t for t in tools if shutil.which(t) is None]
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        missing.append("PyInstaller")
    return missing


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    missing = _tools_missing()
    if missing and not os.environ.get("CI"):
        pytest.skip(f"needs {', '.join(missing)}: `make package-test` installs them")
    work = tmp_path_factory.mktemp("package")
    r = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build.py"),
         "--dist", str(work / "dist"), "--work", str(work / "work")],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    summary: dict[str, Any] = json.loads((work / "work" / "summary.json").read_text())
    summary["work"] = work
    yield summary
    shutil.rmtree(work, ignore_errors=True)  # about 500 MB of bundle copies and packages


@pytest.fixture(scope="session")
def bundle(built: dict[str, Any]) -> Path:
    return Path(built["bundle"])


@pytest.fixture(scope="session")
def deb(built: dict[str, Any]) -> Path:
    return Path(built["deb"])


@pytest.fixture(scope="session")
def installed(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The .deb unpacked into a temporary root, as dpkg would install it."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def no_display() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)  # the self-test must pick offscreen by itself
    env.pop("PYTHONPATH", None)
    return env


def assert_self_test(r: subprocess.CompletedProcess[str]) -> None:
    out = r.stdout
    for name in ("store", "refuse corrupt", "accept corrupt", "compress", "export", "doctor"):
        assert re.search(rf"^{name}: ok \(", out, re.M), out + r.stderr
    assert re.search(r"^window: ok \(opened the main window", out, re.M), out + r.stderr
    assert r.returncode == 0, out + r.stderr


# -- the bundle ---------------------------------------------------------------------


def test_bundle_reports_the_one_version(bundle: Path, built: dict[str, Any]) -> None:
    r = subprocess.run([bundle / "uploader", "--version"], capture_output=True, text=True)
    assert r.stdout.strip() == f"uploader {__version__}"
    assert built["version"] == __version__
    metainfo = (ROOT / "resources" / f"{APP_ID}.metainfo.xml").read_text()
    assert re.findall(r'<release\s+version="([^"]+)"', metainfo)[0] == __version__


def test_bundle_self_test(bundle: Path) -> None:
    r = subprocess.run(
        [bundle / "uploader", "self-test"], capture_output=True, text=True, env=no_display(),
        timeout=300,
    )  # fmt: skip
    assert_self_test(r)


def test_bundle_is_within_budget_and_lean(bundle: Path, built: dict[str, Any]) -> None:
    du = subprocess.run(["du", "-sb", bundle], capture_output=True, text=True, check=True)
    assert int(du.stdout.split()[0]) < BUDGET
    qt = bundle / "_internal" / "PySide6"
    plugins = sorted(str(p.relative_to(qt / "Qt" / "plugins")) for p in qt.rglob("plugins/*/*"))
    assert "platforms/libqxcb.so" in plugins
    assert "platforms/libqoffscreen.so" in plugins
    assert "imageformats/libqsvg.so" in plugins
    assert "iconengines/libqsvgicon.so" in plugins
    unwanted = [p for p in plugins if re.search(r"qgtk3|qtvirtualkeyboard|qpdf|tls/|sqldrivers", p)]
    assert unwanted == []
    assert not list(qt.rglob("translations/*.qm"))
    modules = {p.name.split(".")[0] for p in qt.glob("Qt*.so")}
    assert modules == {"QtCore", "QtGui", "QtWidgets", "QtNetwork", "QtSvg"}
    zstd = {p.name for p in (bundle / "_internal" / "zstandard").iterdir()}
    assert any(n.startswith("backend_c.") for n in zstd)
    assert not any("cffi" in n for n in zstd)


def test_bundle_holds_what_the_window_will_import(built: dict[str, Any]) -> None:
    toc = (
        Path(built["work"]) / "work" / "pyinstaller-work" / "uploader" / "PYZ-00.toc"
    ).read_text()
    for module in ("qasync", "uploader.selftest", "uploader.cli", "PySide6"):
        assert f"'{module}'" in toc, module
    if (ROOT / "uploader" / "gui").is_dir():
        assert "'uploader.gui.app'" in toc


def test_bundle_binaries_are_stripped_and_carry_no_build_paths(bundle: Path) -> None:
    unstripped, foreign = [], []
    for p in bundle.rglob("*"):
        if p.is_symlink() or not p.is_file() or p.read_bytes()[:4] != b"\x7fELF":
            continue
        sections = subprocess.run(["readelf", "-S", "-W", p], capture_output=True, text=True)
        if " .symtab " in sections.stdout:
            unstripped.append(p.name)
        dynamic = subprocess.run(["readelf", "-d", "-W", p], capture_output=True, text=True)
        for path in re.findall(r"R(?:UN)?PATH\)\s+Library r\w*path: \[([^\]]*)\]", dynamic.stdout):
            if any(not part.startswith("$ORIGIN") for part in path.split(":") if part):
                foreign.append(f"{p.name}: {path}")
    assert unstripped == []
    assert foreign == []


# -- the .deb -------------------------------------------------------------------------


def control_fields(deb: Path) -> dict[str, str]:
    out = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True, check=True)
    fields: dict[str, str] = {}
    for m in re.finditer(r"^(\S+): (.*(?:\n .*)*)", out.stdout, re.M):
        fields[m.group(1)] = m.group(2)
    return fields


def test_deb_control_fields(deb: Path, built: dict[str, Any]) -> None:
    assert deb.name == DEB_NAME
    fields = control_fields(deb)
    assert fields["Package"] == "uploader"
    assert fields["Version"] == __version__
    assert fields["Architecture"] == "amd64"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    floor = re.fullmatch(r"libc6 \(>= 2\.(\d+)\)", depends[0])
    assert floor
    assert int(floor.group(1)) >= 34
    # every library Qt's platforms link to and the bundle does not ship
    for package in ("libxcb1", "libgl1", "libegl1", "libwayland-client0", "xkb-data"):
        assert package in depends
    installed_kb = int(fields["Installed-Size"])
    assert built["bundle_bytes"] / 1024 < installed_kb < built["bundle_bytes"] / 1024 * 1.1
    info = subprocess.run(["dpkg-deb", "--info", deb], capture_output=True, text=True).stdout
    scripts = [s for s in ("preinst", "postinst", "prerm", "postrm", "config") if f" {s} " in info]
    assert scripts == []


def _package_of(path: str) -> str:
    for candidate in (path, os.path.realpath(path), path.removeprefix("/usr")):
        r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0]
    raise AssertionError(f"no package owns {path}")


def _with_dependencies(packages: set[str]) -> set[str]:
    """The packages and, recursively, what the installed ones depend on."""
    seen, todo = set(), list(packages)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        r = subprocess.run(
            ["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", name],
            capture_output=True,
            text=True,
        )
        for alternative in r.stdout.split(","):
            dep = alternative.split("|")[0].split("(")[0].split(":")[0].strip()
            if dep:
                todo.append(dep)
    return seen


def test_deb_depends_cover_what_ldd_finds_for_the_platform_plugins(deb: Path, bundle: Path) -> None:
    """Checked independently of build.py: ldd resolves the plugins as the bootloader does
    (bundle first), and every library from outside must come with a declared Depends."""
    depends = {d.split("(")[0].strip() for d in control_fields(deb)["Depends"].split(",")}
    covered = _with_dependencies(depends)
    plugins = bundle / "_internal" / "PySide6" / "Qt" / "plugins"
    env = {**os.environ, "LD_LIBRARY_PATH": str(bundle / "_internal")}
    outside: dict[str, str] = {}
    for plugin in sorted(plugins.glob("*/*.so")):
        out = subprocess.run(["ldd", plugin], capture_output=True, text=True, env=env).stdout
        assert "not found" not in out, f"{plugin.name}:\n{out}"
        for path in re.findall(r"=> (/\S+) \(", out):
            if not path.startswith(str(bundle)):
                outside[path] = plugin.name
    assert "libxcb.so.1" in " ".join(outside)  # the xcb platform was looked at
    uncovered = {p: _package_of(p) for p in outside if _package_of(p) not in covered}
    assert uncovered == {}


def test_deb_contents(deb: Path) -> None:
    out = subprocess.run(["dpkg-deb", "--contents", deb], capture_output=True, text=True).stdout
    entries = {line.split()[-1] if " -> " not in line else line.split()[-3]: line
               for line in out.splitlines()}  # fmt: skip
    assert "./opt/uploader/uploader" in entries
    assert entries["./opt/uploader/uploader"].startswith("-rwxr-xr-x root/root")
    assert entries["./usr/bin/uploader"].endswith("./usr/bin/uploader -> /opt/uploader/uploader")
    for path in (
        f"./usr/share/applications/{APP_ID}.desktop",
        f"./usr/share/metainfo/{APP_ID}.metainfo.xml",
        f"./usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg",
        "./usr/share/doc/uploader/copyright",
        "./usr/share/man/man1/uploader.1.gz",
    ):
        assert path in entries, path
    for size in (16, 32, 48, 64, 128, 256, 512):
        assert f"./usr/share/icons/hicolor/{size}x{size}/apps/{APP_ID}.png" in entries
    assert all(" root/root " in line for line in out.splitlines())


def test_installed_self_test(installed: Path) -> None:
    """/usr/bin/uploader of the unpacked package, with its /opt mounted where dpkg puts it."""
    script = f'mount --bind "{installed}/opt" /opt && exec "{installed}/usr/bin/uploader" self-test'
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, env=no_display(), timeout=300,
    )  # fmt: skip
    assert "uploader: " not in r.stderr, r.stderr  # the CLI's own errors
    assert_self_test(r)


def test_installed_desktop_entry_and_metainfo_validate(installed: Path) -> None:
    desktop = installed / "usr" / "share" / "applications" / f"{APP_ID}.desktop"
    r = subprocess.run(["desktop-file-validate", desktop], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error:" not in r.stdout
    text = desktop.read_text()
    assert "\nExec=uploader %F\n" in text
    assert f"\nIcon={APP_ID}\n" in text
    metainfo = installed / "usr" / "share" / "metainfo" / f"{APP_ID}.metainfo.xml"
    r = subprocess.run(
        ["appstreamcli", "validate", "--no-net", metainfo], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_lintian_finds_no_error_or_warning(deb: Path) -> None:
    r = subprocess.run(["lintian", "--pedantic", deb], capture_output=True, text=True, timeout=600)
    tags = [line for line in r.stdout.splitlines() if re.match(r"[EWP]: ", line)]
    assert tags == [], "\n".join(tags)


# -- the tarball -----------------------------------------------------------------------


def test_tarball_is_portable(built: dict[str, Any], tmp_path: Path) -> None:
    tarball = Path(built["tarball"])
    assert tarball.name == f"{TAR_NAME}.tar.gz"
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert all(m.uid == 0 and m.gid == 0 for m in members.values())
        assert members[f"{TAR_NAME}/uploader"].mode & 0o111
        assert f"{TAR_NAME}/share/applications/{APP_ID}.desktop" in members
        assert f"{TAR_NAME}/install-desktop.sh" in members
        tar.extractall(tmp_path, filter="tar")
    r = subprocess.run(
        [tmp_path / TAR_NAME / "uploader", "--version"], capture_output=True, text=True
    )
    assert r.stdout.strip() == f"uploader {__version__}"
    shutil.rmtree(tmp_path / TAR_NAME)
