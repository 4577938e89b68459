"""`python -m talking_head bake ...` with the pip bpy module: the farm path without a Blender binary.

The checkout must be importable as the package `talking_head` (a folder or link of that name on
PYTHONPATH); the arguments are those of `blender -c talking_head bake`.
"""

import sys

from .blender.cli import main

sys.exit(main(sys.argv[1:]))
