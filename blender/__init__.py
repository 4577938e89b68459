"""The Blender layer: reads scene state, calls core, writes results back (bpy, no UI).

Operators and panels stay thin by calling these modules; the command line (bake) uses the same
functions synchronously, so the UI and the farm produce identical animation.
"""
