"""`python -m talking_head bake ...` where the extension is importable as the package `talking_head`
(an installed extension's folder on PYTHONPATH). From a checkout, `tools/bake.py` does the same with
no link or install; the arguments are those of `blender -c talking_head bake`.
"""

import sys

from .blender.cli import main

sys.exit(main(sys.argv[1:]))
