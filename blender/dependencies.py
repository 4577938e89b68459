"""Where Talking Head's Python packages live inside Blender, and the job that installs them.

The folder is the extension's own user folder (`extension_path_user(...)/site-packages`), kept
across extension updates and outside Blender's install; it goes on sys.path at register.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass

import bpy

from ..core import dependencies
from .worker import WorkerJob

ADDON_PACKAGE = __package__.rsplit(".", 1)[0]  # bl_ext.<repo>.talking_head when installed as an extension
LOG_LINES = 200
# pip's output for the preferences to show (written by the worker thread, read when drawing)
install_log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)


def site_folder(create: bool = False) -> str | None:
    """The extension's own site-packages folder, or None where the add-on is no extension (a checkout
    imported as a package, as on a farm, where the packages come from the environment)."""
    if not ADDON_PACKAGE.startswith("bl_ext."):
        return None
    return bpy.utils.extension_path_user(ADDON_PACKAGE, path="site-packages", create=create)


def activate_site_folder() -> None:
    """At register: finish or undo an interrupted install, and put the folder on sys.path."""
    folder = site_folder()
    if folder and os.path.isdir(os.path.dirname(folder)):
        dependencies.recover_interrupted_swap(folder)
        dependencies.add_to_path(folder)


@dataclass
class InstallRequest:
    target: str
    requirements: list[str]
    wheel_dir: str = ""
    build: str = "cpu"
    online_allowed: bool = False
    uninstall: bool = False


def install_request(wheel_dir: str = "", torch_choice: str = "auto", packages: str = "",
                    uninstall: bool = False, video: bool = False) -> InstallRequest:
    """Read what to install and how from Blender's state; checked before anything runs."""
    target = site_folder(create=True)
    if target is None:
        raise dependencies.DependencyError(
            "Talking Head runs from a checkout here, not as an installed extension: install its packages into "
            "this Python with pip (see the README).")
    requirements = packages.split() if packages else dependencies.requirements_for_this_python(video=video)
    return InstallRequest(target=target, requirements=requirements, wheel_dir=bpy.path.abspath(wheel_dir) if wheel_dir else "",
                          build=dependencies.torch_build(torch_choice), online_allowed=bool(bpy.app.online_access),
                          uninstall=uninstall)


def run_install(request: InstallRequest, progress=None, should_cancel=None) -> str:
    """The installation itself (no bpy: it runs in a worker thread)."""
    report = progress or (lambda fraction, message: None)
    if request.uninstall:
        return dependencies.uninstall(request.target)
    install_log.clear()

    def log(line: str) -> None:
        install_log.append(line)
        # pip gives no overall fraction: creep towards the end with each line it prints
        report(min(0.95, len(install_log) / 150.0), line[:80])

    summary = dependencies.install(request.target, request.requirements, online_allowed=request.online_allowed,
                                   wheel_dir=request.wheel_dir, build=request.build, log=log,
                                   should_cancel=should_cancel or (lambda: False))
    dependencies.add_to_path(request.target)
    return summary


class InstallJob(WorkerJob):
    def __init__(self, request: InstallRequest):
        super().__init__(request, run_install, "installation")
