"""Talking Head: speech to editable FLAME facial animation in Blender.

The extension's Blender layer (operators/, panels/, blender/) drives the bpy-free core/.
"""

import bpy

from . import operators, panels, preferences, properties

_MODULES = (preferences, properties, operators, panels)
_cli_handle = None


def _cli(argv: list[str]) -> int:
    from .blender.cli import main

    return main(argv)


def register() -> None:
    global _cli_handle
    from .blender.dependencies import activate_site_folder

    activate_site_folder()  # packages installed by Install Dependencies become importable
    for module in _MODULES:
        module.register()
    if hasattr(bpy.utils, "register_cli_command"):
        _cli_handle = bpy.utils.register_cli_command("talking_head", _cli)


def unregister() -> None:
    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    for module in reversed(_MODULES):
        module.unregister()
