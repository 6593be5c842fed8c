"""`make package` on Linux: icons, the PyInstaller bundle, the .deb and the portable tarball.

Build-time only. Reads the version from uploader/__init__.py and nowhere else; never
installs anything (packaging/deps.sh does).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packaging"))

import icons  # noqa: E402

from uploader import __version__  # noqa: E402

APP_ID = "org.uploader.Uploader"
RESOURCES = ROOT / "resources"
DESKTOP = RESOURCES / f"{APP_ID}.desktop"
METAINFO = RESOURCES / f"{APP_ID}.metainfo.xml"
MAINTAINER = "Uploader developers <uploader@users.noreply.github.com>"
DESCRIPTION = """\
Put documents away safely, one file at a time
 Uploader stores every document dropped on its window (or given to the
 uploader command) in a library folder, each file as its own job, and
 compresses it with zstd in the background. Every copy is verified by its
 SHA-256 when it is stored and when it is read back.
 .
 This package ships a self-contained build under /opt/uploader; run
 "uploader self-test" to check an installation."""


# Read at run time by bundled libraries, so no NEEDED entry names them: the keyboard
# layouts of libxkbcommon (the xcb and wayland platforms) and fontconfig's configuration
# (which pulls in a font).
DATA_DEPENDS = ("xkb-data", "fontconfig-config")


class BuildError(Exception):
    """The build cannot go on; the message says what to do."""


def log(message: str) -> None:
    print(f"build: {message}", flush=True)


def run(*cmd: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], check=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]


# -- the bundle -------------------------------------------------------------------


def check_metainfo(version: str) -> None:
    releases = re.findall(r'<release\s+version="([^"]+)"', METAINFO.read_text())
    if not releases or releases[0] != version:
        raise BuildError(
            f"{METAINFO.relative_to(ROOT)}: the newest <release> is {releases[:1]}, but "
            f"uploader/__init__.py says {version}; add a <release> for it"
        )


def build_bundle(work: Path) -> Path:
    """The one-folder PyInstaller build (and Uploader.app on macOS); returns its folder."""
    env = {**os.environ, "UPLOADER_ICONS": str(work / "icons"), "QT_QPA_PLATFORM": "offscreen"}
    run(
        sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
        "--distpath", work / "pyinstaller", "--workpath", work / "pyinstaller-work",
        ROOT / "packaging" / "uploader.spec",
        env=env,
    )  # fmt: skip
    bundle = work / "pyinstaller" / "uploader"
    program = bundle / "uploader"
    if sys.platform == "win32":
        program = bundle / "uploader.exe"
    elif sys.platform == "darwin":
        program = work / "pyinstaller" / "Uploader.app" / "Contents" / "MacOS" / "uploader"
    else:
        drop_foreign_runpaths(bundle)
    out = run(program, "--version", capture_output=True).stdout.strip()
    if out != f"uploader {__version__}":
        raise BuildError(f"the bundle says {out!r}, expected 'uploader {__version__}'")
    return bundle


def is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def elf_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_elf(p))


def needed(path: Path) -> list[str]:
    out = run("readelf", "-d", "--wide", path, capture_output=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def drop_foreign_runpaths(bundle: Path) -> None:
    """Remove search paths that point at the build machine (pyenv's /root/.pyenv/...):
    on a user's machine they name a folder that might hold other libraries."""
    for elf in elf_files(bundle):
        out = run("readelf", "-d", "--wide", elf, capture_output=True).stdout
        m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r\w*path: \[([^\]]*)\]", out)
        if m and not all(p.startswith("$ORIGIN") for p in m.group(1).split(":") if p):
            run("patchelf", "--remove-rpath", elf)


def glibc_versions(path: Path) -> set[tuple[int, ...]]:
    out = run("readelf", "-V", "--wide", path, capture_output=True).stdout
    return {tuple(map(int, v.split("."))) for v in re.findall(r"Name: GLIBC_([0-9.]+)\b", out)}


def system_libraries() -> dict[str, Path]:
    """soname -> path, for the 64-bit libraries the dynamic linker knows."""
    out = run("ldconfig", "-p", capture_output=True).stdout
    found: dict[str, Path] = {}
    for m in re.finditer(r"^\s*(\S+) \(([^)]*)\) => (\S+)$", out, re.M):
        if "x86-64" in m.group(2) or "64bit" in m.group(2):
            found.setdefault(m.group(1), Path(m.group(3)))
    return found


def owning_package(path: Path) -> str:
    candidates = {str(path), os.path.realpath(path)}
    for c in list(candidates):  # merged /usr: dpkg knows one of the two spellings
        candidates.add(c.removeprefix("/usr") if c.startswith("/usr/") else "/usr" + c)
    for c in sorted(candidates):
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].split(",")[0].strip()
    raise BuildError(f"no Debian package provides {path}")


def depends(bundle: Path) -> tuple[list[str], dict[str, str], str]:
    """Depends for the .deb: the packages of every library the bundle links against but
    does not ship, found from the ELF files' NEEDED entries; and the glibc floor."""
    shipped = {p.name for p in bundle.rglob("*")}
    system = system_libraries()
    wanted: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    floor: tuple[int, ...] = (2, 17)
    for elf in elf_files(bundle):
        floor = max([floor, *glibc_versions(elf)])
        for soname in needed(elf):
            if soname in shipped or soname in wanted:
                continue
            if soname not in system:
                missing.setdefault(soname, []).append(str(elf.relative_to(bundle)))
                continue
            wanted[soname] = owning_package(system[soname])
    if missing:
        lines = "\n".join(f"  {so} (needed by {', '.join(w[:3])})" for so, w in missing.items())
        raise BuildError(
            f"libraries the bundle needs are not on this machine:\n{lines}\n"
            "run packaging/deps.sh (or install them) and build again"
        )
    glibc = ".".join(map(str, floor))
    packages = sorted((set(wanted.values()) | set(DATA_DEPENDS)) - {"libc6"})
    return [f"libc6 (>= {glibc})", *packages], wanted, glibc


# -- the .deb and the tarball ------------------------------------------------------


def normalise_modes(folder: Path, programs: tuple[Path, ...]) -> None:
    """0755 folders and the given programs, 0644 everything else (shared libraries too)."""
    for p in [folder, *folder.rglob("*")]:
        if p.is_symlink():
            continue
        p.chmod(0o755 if p.is_dir() or p in programs else 0o644)


def install_share(share: Path, icon_dir: Path) -> None:
    """The desktop entry, hicolor icons and AppStream metadata under a share/ folder."""
    (share / "applications").mkdir(parents=True)
    shutil.copy2(DESKTOP, share / "applications" / DESKTOP.name)
    (share / "metainfo").mkdir(parents=True)
    shutil.copy2(METAINFO, share / "metainfo" / METAINFO.name)
    shutil.copytree(icon_dir / "hicolor", share / "icons" / "hicolor")


def build_deb(bundle: Path, work: Path, dist: Path, deps: list[str]) -> Path:
    root = work / "deb"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(bundle, root / "opt" / "uploader", symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "uploader").symlink_to("/opt/uploader/uploader")
    share = root / "usr" / "share"
    install_share(share, work / "icons")
    doc = share / "doc" / "uploader"
    doc.mkdir(parents=True)
    shutil.copy2(ROOT / "packaging" / "debian" / "copyright", doc / "copyright")
    changelog = (ROOT / "packaging" / "debian" / "changelog").read_text()
    changelog = changelog.replace("@VERSION@", __version__)
    # a version without a Debian revision makes this a native package: changelog.gz
    with gzip.GzipFile(doc / "changelog.gz", "wb", compresslevel=9, mtime=0) as f:
        f.write(changelog.encode())
    man = share / "man" / "man1"
    man.mkdir(parents=True)
    page = (ROOT / "packaging" / "debian" / "uploader.1").read_text()
    with gzip.GzipFile(man / "uploader.1.gz", "wb", compresslevel=9, mtime=0) as f:
        f.write(page.replace("@VERSION@", __version__).encode())
    overrides = share / "lintian" / "overrides"
    overrides.mkdir(parents=True)
    shutil.copy2(ROOT / "packaging" / "debian" / "lintian-overrides", overrides / "uploader")
    normalise_modes(root, (root / "opt" / "uploader" / "uploader",))
    size_kb = sum(p.lstat().st_size for p in root.rglob("*") if not p.is_dir()) // 1024 + 1
    control = root / "DEBIAN"
    control.mkdir()
    (control / "control").write_text(
        f"Package: uploader\n"
        f"Version: {__version__}\n"
        f"Architecture: amd64\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {size_kb}\n"
        f"Depends: {', '.join(deps)}\n"
        f"Section: utils\n"
        f"Priority: optional\n"
        f"Description: {DESCRIPTION}\n"
    )
    sums = [
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root)}"
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and control not in p.parents
    ]
    (control / "md5sums").write_text("\n".join(sums) + "\n")
    (control / "md5sums").chmod(0o644)
    (control / "control").chmod(0o644)
    deb = dist / f"uploader_{__version__}_amd64.deb"
    threads = f"--threads-max={os.cpu_count() or 1}"
    run(
        "dpkg-deb", "--root-owner-group", "-Zxz", threads, "--build", root, deb, capture_output=True
    )
    return deb


def build_tarball(bundle: Path, work: Path, dist: Path) -> Path:
    name = f"Uploader-{__version__}-linux-x86_64"
    top = work / "tar" / name
    shutil.rmtree(top.parent, ignore_errors=True)
    shutil.copytree(bundle, top, symlinks=True)
    install_share(top / "share", work / "icons")
    shutil.copy2(ROOT / "packaging" / "linux" / "README.txt", top / "README.txt")
    shutil.copy2(ROOT / "packaging" / "linux" / "install-desktop.sh", top / "install-desktop.sh")
    normalise_modes(top, (top / "uploader", top / "install-desktop.sh"))

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    out = dist / f"{name}.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(top, arcname=name, filter=owned_by_root)
    return out


def du(path: Path) -> int:
    """Bytes on disk, as `du -sb` counts them (symlinks as links)."""
    total = 0
    for p in [path, *path.rglob("*")]:
        st = p.lstat()
        total += st.st_size if not stat.S_ISDIR(st.st_mode) else 0
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the packages go")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "package", help="scratch")
    p.add_argument(
        "--bundle-only",
        action="store_true",
        help="icons and the PyInstaller build only (Windows and macOS build their installers "
        "from it; see packaging/README.md)",
    )
    args = p.parse_args(argv)
    if not args.bundle_only and not sys.platform.startswith("linux"):
        raise SystemExit("build.py builds the .deb on Linux only; use --bundle-only here")
    dist: Path = args.dist.resolve()
    work: Path = args.work.resolve()
    timings: dict[str, float] = {}
    try:
        t = time.monotonic()
        check_metainfo(__version__)
        shutil.rmtree(work / "icons", ignore_errors=True)
        icons.build(ROOT / "resources" / "icons" / "uploader.svg", work / "icons", APP_ID)
        timings["icons"] = time.monotonic() - t
        t = time.monotonic()
        bundle = build_bundle(work)
        timings["bundle"] = time.monotonic() - t
        if args.bundle_only:
            log(f"bundle {du(bundle) / 1e6:.1f} MB in {bundle} ({timings['bundle']:.0f} s)")
            return 0
        t = time.monotonic()
        deps, sonames, glibc = depends(bundle)
        dist.mkdir(parents=True, exist_ok=True)
        deb = build_deb(bundle, work, dist, deps)
        timings["deb"] = time.monotonic() - t
        t = time.monotonic()
        tarball = build_tarball(bundle, work, dist)
        timings["tarball"] = time.monotonic() - t
    except BuildError as exc:
        print(f"build: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"build: {' '.join(map(str, exc.cmd))} failed ({exc.returncode})", file=sys.stderr)
        print(exc.stderr or "", file=sys.stderr)
        return 1
    summary = {
        "version": __version__,
        "bundle": str(bundle),
        "bundle_bytes": du(bundle),
        "deb": str(deb),
        "deb_bytes": deb.stat().st_size,
        "tarball": str(tarball),
        "tarball_bytes": tarball.stat().st_size,
        "depends": deps,
        "sonames": sonames,
        "glibc_floor": glibc,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    mb = 1_000_000
    log(f"bundle {summary['bundle_bytes'] / mb:.1f} MB in {bundle}")
    log(f"{deb.name} {summary['deb_bytes'] / mb:.1f} MB; Depends: {', '.join(deps)}")
    log(f"{tarball.name} {summary['tarball_bytes'] / mb:.1f} MB")
    log("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
