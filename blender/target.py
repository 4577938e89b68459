"""The mesh to animate: its rest shape and triangles, checked for FLAME topology."""

from __future__ import annotations

import bpy
import numpy as np

from ..core.errors import TopologyError
from ..core.flame import EXPECTED, check_topology


def rest_shape(obj: bpy.types.Object) -> np.ndarray:
    """Local rest positions (V, 3): the Basis shape key when there is one, else the mesh's vertices."""
    mesh = obj.data
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    if mesh.shape_keys and mesh.shape_keys.reference_key:
        mesh.shape_keys.reference_key.data.foreach_get("co", coords)
    else:
        mesh.vertices.foreach_get("co", coords)
    return coords.reshape(-1, 3)


def triangles(mesh: bpy.types.Mesh) -> np.ndarray | None:
    """(F, 3) vertex indices when every polygon is a triangle, else None (not FLAME)."""
    sizes = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", sizes)
    if len(sizes) == 0 or np.any(sizes != 3):
        return None
    corners = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    return corners.reshape(-1, 3).astype(np.int64)


def check_target(obj: bpy.types.Object | None) -> tuple[np.ndarray, np.ndarray]:
    """Template and triangles of `obj`, or TopologyError saying what is wrong and what is expected."""
    if obj is None:
        raise TopologyError(f"No active object. Select {EXPECTED}.")
    if obj.type != "MESH":
        raise TopologyError(f"'{obj.name}' is a {obj.type.lower()}, not a mesh. Select {EXPECTED}.")
    tris = triangles(obj.data)
    n_vertices = len(obj.data.vertices)
    if tris is None:
        check_topology(n_vertices, None, obj.name)  # a wrong count gives the clearer message
        raise TopologyError(
            f"'{obj.name}' has {n_vertices} vertices but faces that are not all triangles; Talking Head needs {EXPECTED}."
        )
    check_topology(n_vertices, tris, obj.name)
    return rest_shape(obj), tris
