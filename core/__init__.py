"""Talking Head's core: speech in, per-frame FLAME vertex offsets out.

Nothing in this package imports bpy, so it runs under plain Python, in pytest and in
pipelines without Blender. The Blender layer (operators/, panels/, blender/) calls into it.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
