"""Where a FLAME head sits in its mesh's own coordinates: rotation, scale and origin.

The models predict offsets in FLAME's canonical frame (metres, y up, z forward). A head in a
Blender scene is often rotated (importers turn Y-up into Z-up) or scaled (centimetre rigs), so
the offsets are mapped into the mesh's local frame with a similarity transform estimated from the
mesh alone: the mouth and neck boundary loops (found from connectivity) and the outward normals
around the mouth. No FLAME data is needed for this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Loop sizes of the two holes of FLAME's topology (mouth opening, neck)
MOUTH_LOOP_SIZE = 32
NECK_LOOP_SIZE = 30
# Mouth-centroid-to-neck-centroid distance of FLAME heads in metres (mean of five identities,
# spread about +/-12%); used only to recognise the mesh's unit (m, cm, mm, ...).
CANONICAL_MOUTH_NECK_M = 0.165


@dataclass(frozen=True)
class HeadFrame:
    """local directions = scale * rotation @ canonical directions (offsets carry no translation)."""

    rotation: np.ndarray  # (3, 3), columns are the canonical x, y, z axes in local coordinates
    scale: float

    def offsets_to_local(self, offsets: np.ndarray) -> np.ndarray:
        """Map canonical offsets (..., 3) to the mesh's local frame."""
        return (self.scale * offsets @ self.rotation.T).astype(np.float32)

    def points_to_canonical(self, points: np.ndarray) -> np.ndarray:
        return (points @ self.rotation / self.scale).astype(np.float32)


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """Ordered vertex loops along the mesh's open boundary edges."""
    triangles = np.asarray(triangles, dtype=np.int64)
    directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    undirected = np.sort(directed, axis=1)
    _, inverse, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    boundary = directed[counts[inverse.ravel()] == 1]
    following = {int(a): int(b) for a, b in boundary}
    loops: list[np.ndarray] = []
    while following:
        start = next(iter(following))
        loop = [start]
        nxt = following.pop(start)
        while nxt != start and nxt in following:
            loop.append(nxt)
            nxt = following.pop(nxt)
        loops.append(np.array(loop, dtype=np.int64))
    return loops


def _vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices, dtype=np.float64)
    for i in range(3):
        np.add.at(normals, triangles[:, i], face_normals)
    return normals


def _snap_scale(estimate: float) -> float:
    """Prefer an exact power of ten (m, dm, cm, mm rigs): head sizes vary, units do not."""
    power = 10.0 ** np.round(np.log10(estimate))
    return float(power) if 0.7 < estimate / power < 1.4 else float(estimate)


def estimate_head_frame(vertices: np.ndarray, triangles: np.ndarray) -> HeadFrame:
    """Similarity transform from FLAME's canonical frame to this (FLAME-topology) mesh's frame."""
    vertices = np.asarray(vertices, dtype=np.float64)
    loops = {len(loop): loop for loop in boundary_loops(triangles)}
    if MOUTH_LOOP_SIZE not in loops or NECK_LOOP_SIZE not in loops:
        raise ValueError("mesh lacks FLAME's mouth and neck boundary loops")
    mouth = vertices[loops[MOUTH_LOOP_SIZE]]
    mouth_centre = mouth.mean(axis=0)
    neck_centre = vertices[loops[NECK_LOOP_SIZE]].mean(axis=0)

    # forward: the outward normal around the lips (winding gives the sign)
    near_mouth = np.linalg.norm(vertices - mouth_centre, axis=1) < 1.5 * np.linalg.norm(mouth - mouth_centre, axis=1).max()
    forward = _vertex_normals(vertices, np.asarray(triangles))[near_mouth].sum(axis=0)
    forward /= np.linalg.norm(forward)
    # up: away from the neck, made perpendicular to forward (the neck sits below and behind the mouth)
    up = mouth_centre - neck_centre
    up -= forward * (up @ forward)
    up /= np.linalg.norm(up)
    side = np.cross(up, forward)  # x = y cross z: FLAME's +x

    scale = _snap_scale(np.linalg.norm(mouth_centre - neck_centre) / CANONICAL_MOUTH_NECK_M)
    rotation = _nearest_axis_aligned(np.stack([side, up, forward], axis=1))
    return HeadFrame(rotation=rotation, scale=scale)


IDENTITY_FRAME = HeadFrame(rotation=np.eye(3), scale=1.0)


def _nearest_axis_aligned(rotation: np.ndarray) -> np.ndarray:
    """Snap to a 90-degree rotation when within ~12 degrees of one: importers rotate by right angles, and
    a head's own tilt should not tilt the jaw's motion."""
    snapped = np.zeros_like(rotation)
    for col in range(3):
        row = int(np.argmax(np.abs(rotation[:, col])))
        snapped[row, col] = np.sign(rotation[row, col])
    if abs(np.linalg.det(snapped) - 1) < 1e-6 and np.all(np.sum(np.abs(snapped), axis=0) == 1):
        if np.all(np.abs(rotation * snapped).sum(axis=0) > np.cos(np.radians(12))):
            return snapped
    u, _, vt = np.linalg.svd(rotation)
    return u @ vt
