"""Operators: thin wrappers that read Blender state, call core through blender/, write back."""

import bpy

from .adapt_style import TALKINGHEAD_OT_adapt_style
from .cancel import TALKINGHEAD_OT_cancel
from .dependencies import TALKINGHEAD_OT_install_dependencies
from .generate import TALKINGHEAD_OT_generate
from .use_words_heard import TALKINGHEAD_OT_use_words_heard

CLASSES = (TALKINGHEAD_OT_generate, TALKINGHEAD_OT_adapt_style, TALKINGHEAD_OT_cancel,
           TALKINGHEAD_OT_install_dependencies, TALKINGHEAD_OT_use_words_heard)
register, unregister = bpy.utils.register_classes_factory(CLASSES)
