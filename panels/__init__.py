"""Panels: draw the settings and the job's progress; no logic beyond what to show."""

import bpy

from .main import TALKINGHEAD_PT_main

CLASSES = (TALKINGHEAD_PT_main,)
register, unregister = bpy.utils.register_classes_factory(CLASSES)
