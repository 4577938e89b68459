"""Import this checkout as the package `talking_head`, the name Blender gives the extension.

The add-on's modules use relative imports (`from ..core import ...`), so they must live inside a
package of that name. Loading the checkout's `__init__.py` under that name does it without a
symlink or a temporary folder, whatever the checkout's folder is called.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "talking_head"


def import_checkout() -> ModuleType:
    """The checkout as the imported package `talking_head` (bpy must be importable)."""
    loaded = sys.modules.get(PACKAGE)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(PACKAGE, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    return module
