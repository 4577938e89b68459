"""core.dependencies without Blender: which torch, the pip command, cancel, and the swap that never
leaves a half-installed folder."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import REPO
from core.dependencies import (REQUIREMENTS, DependencyError, _run_pip, install, pip_arguments,
                               recover_interrupted_swap, requirement_name, requirements_for_this_python, torch_build)
from core.errors import Cancelled


def test_torch_build_follows_the_driver_unless_told_and_macos_takes_the_default():
    assert torch_build("auto", "linux", has_nvidia=True) == "cuda"
    assert torch_build("auto", "win32", has_nvidia=False) == "cpu"
    assert torch_build("cpu", "linux", has_nvidia=True) == "cpu"
    assert torch_build("cuda", "darwin") == "default"
    with pytest.raises(DependencyError, match="Unknown torch build"):
        torch_build("rocm")


def test_pip_command_online_and_from_a_wheel_folder():
    online = pip_arguments("py", "/t", ["torch==2.13.0"], build="cpu")
    assert online[:6] == ["py", "-m", "pip", "install", "--target", "/t"]
    assert "--extra-index-url" in online and "https://download.pytorch.org/whl/cpu" in online
    offline = pip_arguments("py", "/t", ["torch==2.13.0"], wheel_dir="/w", build="cuda")
    assert offline[offline.index("--find-links") + 1] == "/w" and "--no-index" in offline
    assert "--extra-index-url" not in offline
    assert "--extra-index-url" not in pip_arguments("py", "/t", ["x"], build="default")


def test_requirements_match_requirements_txt_and_pin_this_numpy():
    pinned = {line.split("==")[0].lower(): line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    from core.dependencies import VIDEO_REQUIREMENTS

    for requirement in REQUIREMENTS + VIDEO_REQUIREMENTS:
        assert pinned[requirement_name(requirement)] == requirement
    import numpy

    assert f"numpy=={numpy.__version__}" in requirements_for_this_python()
    assert "mediapipe==0.10.21" in requirements_for_this_python(video=True)
    assert "mediapipe==0.10.21" not in requirements_for_this_python()


def test_offline_without_a_wheel_folder_is_refused_before_pip(tmp_path):
    with pytest.raises(DependencyError, match="Online access is off"):
        install(str(tmp_path / "site"), ["x==1"], online_allowed=False)
    with pytest.raises(DependencyError, match="Wheel folder not found"):
        install(str(tmp_path / "site"), ["x==1"], online_allowed=False, wheel_dir=str(tmp_path / "nowhere"))
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_pip_within_a_fraction_of_a_second():
    slow = [sys.executable, "-c", "import time; print('collecting', flush=True); time.sleep(60)"]
    lines = []
    started = time.time()
    with pytest.raises(Cancelled, match="unchanged"):
        _run_pip(slow, lines.append, should_cancel=lambda: bool(lines))
    assert time.time() - started < 10 and lines == ["collecting"]


def test_an_interrupted_swap_is_undone(tmp_path):
    target = tmp_path / "site-packages"
    (tmp_path / "site-packages.previous").mkdir()
    (tmp_path / "site-packages.previous" / "old.py").write_text("")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"site-packages.installing-{dead.pid}").mkdir()
    recover_interrupted_swap(str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-packages"] and (target / "old.py").is_file()


def test_wheelhouse_builds_one_download_command_per_platform():
    sys.path.insert(0, str(REPO / "tools"))
    from wheelhouse import download_command

    linux = download_command("linux", "/w", cuda=False, python="py")
    assert "--only-binary=:all:" in linux and "manylinux_2_28_x86_64" in linux and "torch==2.13.0" in linux
    assert "https://download.pytorch.org/whl/cpu" in linux
    assert "https://download.pytorch.org/whl/cu126" in download_command("windows", "/w", cuda=True, python="py")
    mac = download_command("macos-arm64", "/w", cuda=False, python="py")
    assert "macosx_11_0_arm64" in mac and "--extra-index-url" not in mac
    with pytest.raises(SystemExit, match="no CUDA build"):
        download_command("macos-arm64", "/w", cuda=True)
