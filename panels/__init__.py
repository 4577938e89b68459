"""Panels: draw the settings and the job's progress; no logic beyond what to show."""

import bpy

from .adapt import TALKINGHEAD_PT_adapt
from .main import TALKINGHEAD_PT_main

CLASSES = (TALKINGHEAD_PT_main, TALKINGHEAD_PT_adapt)  # the parent first
register, unregister = bpy.utils.register_classes_factory(CLASSES)
