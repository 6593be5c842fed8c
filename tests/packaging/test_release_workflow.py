"""The release workflow and the Windows/macOS recipes: valid, and in step with the Linux build."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def actionlint() -> str:
    found = shutil.which("actionlint") or str(Path(sys.executable).with_name("actionlint"))
    if not Path(found).exists():
        pytest.skip("actionlint is not installed: `make package-test` installs it")
    return found


def test_actionlint_passes_with_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed: packaging/deps.sh installs it")
    r = subprocess.run([actionlint(), str(WORKFLOW)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_matrix_covers_the_glibc_floor_windows_and_both_macs() -> None:
    text = WORKFLOW.read_text()
    runners = re.findall(r"^\s+- os: (\S+)", text, re.M)
    assert runners[0] == "ubuntu-22.04"  # glibc 2.35: the floor the .deb declares there
    assert any(r.startswith("windows") for r in runners)
    assert "macos-14" in runners  # arm64
    assert any(r.startswith("macos") and "intel" in r for r in runners)


def test_every_platform_self_tests_what_it_built() -> None:
    steps = WORKFLOW.read_text().split("- name: ")[1:]
    for os_name in ("Linux", "Windows", "macOS"):
        mine = [s for s in steps if f"runner.os == '{os_name}'" in s]
        assert any(re.search(r"uploader(\.exe)?\"? self-test", s) for s in mine), os_name
    assert any("actions/upload-artifact" in s and "dist/*" in s for s in steps)


def test_windows_and_macos_recipes_use_the_bundle_that_build_py_makes() -> None:
    iss = (ROOT / "packaging" / "windows" / "uploader.iss").read_text()
    assert '#define Bundle "..\\..\\build\\package\\pyinstaller\\uploader"' in iss
    assert "uploaderw.exe" in iss  # the windowed twin the spec builds on Windows
    assert "OpenWithList" in iss
    assert "Uninstallable=no" not in iss  # Inno Setup writes an uninstaller unless told not to
    assert "UninstallDisplayName" in iss
    spec = (ROOT / "packaging" / "uploader.spec").read_text()
    assert 'name="uploaderw"' in spec
    assert "CFBundleDocumentTypes" in spec
    dmg = (ROOT / "packaging" / "macos" / "make_dmg.sh").read_text()
    assert "build/package/pyinstaller/Uploader.app" in dmg
