"""Reading the pickles the face-data world ships (FLAME's region masks, VOCASET's templates.pkl)
without letting a pickle run code.

A pickle can name any importable callable; a planted file would run it on load. This unpickler
allows only what those files hold: numpy arrays, numpy scalars and dtypes, and plain containers.
"""

from __future__ import annotations

import pickle
from typing import Any

from .errors import TalkingHeadError

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("collections", "OrderedDict"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object"),
    ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 spell bytes
}


class UnsafePickleError(TalkingHeadError):
    """The pickle names something other than arrays and containers."""


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            # copy_reg._reconstructor with object builds only plain instances of allowed classes
            return super().find_class(module, name)
        raise UnsafePickleError(f"it asks to run {module}.{name}, and only numpy arrays and plain containers are "
                                "allowed")


def load_arrays_pickle(path: str, what: str) -> Any:
    """The content of a pickle of numpy arrays and plain containers (Python 2 pickles too)."""
    try:
        with open(path, "rb") as handle:
            return _ArraysOnly(handle, encoding="latin1").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"Refusing to load {what} {path}: {exc}. Replace it with the original file.") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise TalkingHeadError(f"Cannot read {what} {path}: {exc or type(exc).__name__}. "
                               "Replace it with the original file.") from None
