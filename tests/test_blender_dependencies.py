"""Install Dependencies, driven as Blender would (pip bpy, headless): a small wheel built here is
installed from a local wheel folder into a temporary user folder and then imported; online access
off refuses the network; a failing pip leaves the earlier folder working."""

from __future__ import annotations

import base64
import hashlib
import importlib
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("bpy", reason="bpy 5.0.1 (Python 3.11) runs these tests; see README")

from blender_helpers import OperatorDriver, addon_module, register_extension  # noqa: E402


def build_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel: one module that knows its version."""
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  "Tag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record_path = f"{name}-{version}.dist-info/RECORD"
    files[record_path] = "\n".join(record + [f"{record_path},,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def installer(tmp_path, monkeypatch):
    import bpy

    register_extension(tmp_path)
    module = addon_module("blender.dependencies")
    target = tmp_path / "user" / "site-packages"
    monkeypatch.setattr(module, "site_folder", lambda create=False: str(target))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "thprobe", "1.0")
    prefs = bpy.context.preferences.addons[addon_module("preferences").ADDON_PACKAGE].preferences
    saved = prefs.wheel_folder
    prefs.wheel_folder = str(wheels)
    yield target, wheels, prefs
    prefs.wheel_folder = saved
    sys.path[:] = [p for p in sys.path if p != str(target)]
    sys.modules.pop("thprobe", None)


def run_operator(packages: str, cancel_after: int | None = None, uninstall: bool = False):
    import bpy

    operator = addon_module("operators.dependencies").TALKINGHEAD_OT_install_dependencies
    driver = OperatorDriver(operator)
    driver.packages, driver.uninstall = packages, uninstall
    assert driver.start_job(bpy.context), driver.reports
    return driver.run_modal(bpy.context, timeout=120, cancel_after=cancel_after), driver


def test_installs_from_a_wheel_folder_and_the_addon_imports_it(installer):
    target, _, _ = installer
    result, driver = run_operator("thprobe==1.0")
    assert result == {"FINISHED"}, driver.reports
    assert (target / "thprobe" / "__init__.py").is_file()
    importlib.invalidate_caches()
    assert importlib.import_module("thprobe").VERSION == "1.0"
    versions = importlib.import_module("core.dependencies").installed_versions(str(target), ("thprobe==1.0",))
    assert versions == {"thprobe": ("1.0", "here")}
    assert any("thprobe" in line for line in addon_module("blender.dependencies").install_log)
    assert not [p.name for p in target.parent.iterdir() if p.name != "site-packages"]  # no staging left


def test_a_failing_pip_leaves_the_earlier_install_working(installer):
    target, _, _ = installer
    assert run_operator("thprobe==1.0")[0] == {"FINISHED"}
    before = sorted(p.name for p in target.iterdir())
    result, driver = run_operator("thprobe==2.0")  # not in the wheel folder
    assert result == {"CANCELLED"}
    errors = [message for kind, message in driver.reports if "ERROR" in kind]
    assert errors and "the ones installed before still work" in errors[0] and "thprobe==2.0" in errors[0]
    assert sorted(p.name for p in target.iterdir()) == before
    assert not [p.name for p in target.parent.iterdir() if p.name != "site-packages"]


def test_online_access_off_refuses_the_network(installer):
    import bpy

    target, _, prefs = installer
    prefs.wheel_folder = ""
    system = bpy.context.preferences.system
    saved, system.use_online_access = system.use_online_access, False
    try:
        operator = addon_module("operators.dependencies").TALKINGHEAD_OT_install_dependencies
        driver = OperatorDriver(operator)
        driver.packages, driver.uninstall = "thprobe==1.0", False
        assert driver.start_job(bpy.context) is True  # the request is read; the job refuses before pip runs
        result = driver.run_modal(bpy.context, timeout=60)
    finally:
        system.use_online_access = saved
    assert result == {"CANCELLED"}
    assert any("Online access is off" in message for _, message in driver.reports), driver.reports
    assert not target.exists() or not any(target.iterdir())


def test_uninstall_removes_the_folder(installer):
    target, _, _ = installer
    assert run_operator("thprobe==1.0")[0] == {"FINISHED"}
    result, driver = run_operator("", uninstall=True)
    assert result == {"FINISHED"} and not target.exists(), driver.reports
