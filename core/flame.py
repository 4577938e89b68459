"""The FLAME head topology: what every model in this project animates.

A mesh is accepted when it has FLAME's vertex count and exactly FLAME's triangles (checked on
connectivity through a digest, so face order and winding do not matter but vertex order does:
the models predict per-vertex offsets by index). The digest is of the triangle list only; no
FLAME data ships with the project.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .errors import TopologyError

N_VERTICES = 5023
N_TRIANGLES = 9976
# sha256 of the canonical triangle list (each triangle's indices sorted, rows sorted, int32 LE)
TRIANGLES_SHA256 = "cb2e0bc686b21ecb"  # first 16 hex digits are plenty to tell meshes apart

# ../shared/flame beside the checkout: where this workplace keeps FLAME meshes and masks (never committed)
# (realpath: a checkout linked in as an extension still finds it)
SHARED_FLAME = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))), "shared", "flame")

EXPECTED = f"a FLAME-topology head ({N_VERTICES} vertices, {N_TRIANGLES} triangles, FLAME's vertex order)"
HOW_TO_FIX = (
    "Select a FLAME head (for example one imported from a FLAME .obj or .ply with 'Keep Vert Order'), "
    "or retopologise your head onto FLAME."
)


def triangles_digest(triangles: np.ndarray) -> str:
    canonical = np.sort(np.asarray(triangles, dtype=np.int64), axis=1)
    canonical = canonical[np.lexsort(canonical.T[::-1])]
    return hashlib.sha256(canonical.astype("<i4").tobytes()).hexdigest()[:16]


def check_topology(n_vertices: int, triangles: np.ndarray | None, name: str = "mesh") -> None:
    """Raise TopologyError unless the mesh is FLAME's; `triangles` None skips the connectivity test
    (a bare .npy of positions carries none)."""
    if n_vertices != N_VERTICES:
        raise TopologyError(f"'{name}' has {n_vertices} vertices; Talking Head needs {EXPECTED}. {HOW_TO_FIX}")
    if triangles is None:
        return
    triangles = np.asarray(triangles)
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise TopologyError(f"'{name}' has faces that are not triangles; Talking Head needs {EXPECTED}. {HOW_TO_FIX}")
    if len(triangles) != N_TRIANGLES or triangles_digest(triangles) != TRIANGLES_SHA256:
        raise TopologyError(
            f"'{name}' has {n_vertices} vertices but its {len(triangles)} triangles do not connect them the way "
            f"FLAME does (vertex order or connectivity changed); Talking Head needs {EXPECTED}. {HOW_TO_FIX}"
        )


def load_flame_mesh(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices (5023, 3) and triangles (None for .npy) of a FLAME-topology mesh file, checked."""
    from .mesh_io import read_mesh

    verts, triangles = read_mesh(path)
    check_topology(len(verts), triangles, name=path)
    return verts, triangles


def summed_eyelids(paths: list[str] | None = None) -> np.ndarray | None:
    """(5023, 3) float32: the eyelid-closing offset fields of `paths` (.npy) summed, as the corpus
    rig blinks with them; by default ../shared/flame/*_eyelid.npy. None where there are none."""
    import glob

    files = paths if paths is not None else sorted(glob.glob(os.path.join(SHARED_FLAME, "*_eyelid.npy")))
    return sum(np.load(p).astype(np.float32) for p in files) if files else None


def load_template(path: str) -> np.ndarray:
    """A FLAME-topology neutral head (5023, 3) float32 from .ply, .obj or .npy, checked."""
    return load_flame_mesh(path)[0]
