"""Mesh graph operators for spiral convolutions (SpiralNet++), shared by the emotion model's
Mesh Attention and the diffusion model's motion VQ-VAE.

Everything is computed from connectivity and rest positions: spirals (each vertex followed by
its rings in a consistent angular order), and a pyramid of coarser vertex sets with sparse
down-sampling (region averages) and up-sampling (inverse-distance interpolation) matrices.
Results are deterministic for a mesh and cached on disk by a digest of its triangles.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra

from .errors import TalkingHeadError


def adjacency(triangles: np.ndarray, n_vertices: int, positions: np.ndarray | None = None) -> csr_matrix:
    """Symmetric vertex adjacency (edge lengths when positions are given, else ones)."""
    t = np.asarray(triangles, dtype=np.int64)
    edges = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    weights = (np.linalg.norm(positions[edges[:, 0]] - positions[edges[:, 1]], axis=1) if positions is not None
               else np.ones(len(edges)))
    graph = coo_matrix((weights, (edges[:, 0], edges[:, 1])), shape=(n_vertices, n_vertices)).tocsr()
    return graph.maximum(graph.T).tocsr()


def _neighbours(graph: csr_matrix, vertex: int) -> np.ndarray:
    return graph.indices[graph.indptr[vertex]:graph.indptr[vertex + 1]]


def vertex_normals(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, oriented by the triangles' winding."""
    t = np.asarray(triangles, dtype=np.int64)
    face = np.cross(positions[t[:, 1]] - positions[t[:, 0]], positions[t[:, 2]] - positions[t[:, 0]])
    normals = np.zeros_like(positions, dtype=np.float64)
    for corner in range(3):
        np.add.at(normals, t[:, corner], face)
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


def spirals(graph: csr_matrix, positions: np.ndarray, normals: np.ndarray, length: int) -> np.ndarray:
    """(V, length) indices: each vertex, then its 1-ring, 2-ring, ... each ring ordered
    counter-clockwise about the vertex's normal starting from the direction to its lowest-index
    neighbour. Short spirals (tiny components) are padded with the vertex itself."""
    n = graph.shape[0]
    out = np.empty((n, length), dtype=np.int64)
    for vertex in range(n):
        first_ring = _neighbours(graph, vertex)
        normal = normals[vertex]
        if len(first_ring):
            reference = positions[first_ring.min()] - positions[vertex]
        else:
            reference = np.array([1.0, 0.0, 0.0])
        x_axis = reference - np.dot(reference, normal) * normal
        x_axis /= np.linalg.norm(x_axis) + 1e-12
        y_axis = np.cross(normal, x_axis)
        order, seen, frontier = [vertex], {vertex}, [vertex]
        while len(order) < length and frontier:
            ring = sorted({int(u) for f in frontier for u in _neighbours(graph, f)} - seen)
            if not ring:
                break
            d = positions[ring] - positions[vertex]
            angles = np.mod(np.arctan2(d @ y_axis, d @ x_axis), 2 * np.pi)
            ring = [ring[i] for i in np.lexsort((np.array(ring), np.round(angles, 9)))]
            order.extend(ring)
            seen.update(ring)
            frontier = ring
        order = order[:length]
        out[vertex] = order + [vertex] * (length - len(order))
    return out


@dataclass
class MeshLevel:
    """One level of the pyramid: its vertices (indices into the full mesh), graph and spirals."""

    vertices: np.ndarray  # (n,) indices into the full-resolution mesh
    graph: csr_matrix
    spirals: np.ndarray  # (n, length)


@dataclass
class MeshPyramid:
    levels: list[MeshLevel]  # levels[0] is the full mesh
    down: list[csr_matrix]  # down[i]: level i -> level i+1, rows sum to 1
    up: list[csr_matrix]  # up[i]: level i+1 -> level i, rows sum to 1


def farthest_point_sample(graph: csr_matrix, count: int, start: int = 0) -> np.ndarray:
    """`count` vertices spread evenly over the surface (geodesic farthest-point sampling)."""
    chosen = [start]
    distance = dijkstra(graph, indices=start)
    distance[~np.isfinite(distance)] = 1e9  # other components: sampled first, so they are covered
    for _ in range(count - 1):
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        fresh = dijkstra(graph, indices=nxt)
        fresh[~np.isfinite(fresh)] = 1e9
        distance = np.minimum(distance, fresh)
    return np.array(sorted(chosen))


def _coarsen(graph: csr_matrix, keep: np.ndarray) -> tuple[csr_matrix, csr_matrix, csr_matrix]:
    """(coarse graph, down (k x n), up (n x k)) for the kept vertices: each vertex belongs to its
    geodesically nearest kept vertex; kept vertices are adjacent when their regions touch."""
    n, k = graph.shape[0], len(keep)
    distances, _, sources = dijkstra(graph, indices=keep, min_only=True, return_predecessors=True)
    owner = np.searchsorted(keep, sources)
    rows, cols = graph.nonzero()
    across = owner[rows] != owner[cols]
    coarse = coo_matrix((np.ones(int(across.sum())), (owner[rows[across]], owner[cols[across]])), shape=(k, k)).tocsr()
    coarse = coarse.maximum(coarse.T)
    coarse.data[:] = 1.0
    counts = np.bincount(owner, minlength=k).astype(np.float64)
    down = coo_matrix((1.0 / counts[owner], (owner, np.arange(n))), shape=(k, n)).tocsr()
    # up: inverse-distance blend of the vertex's own region centre and the regions next to it
    up_rows, up_cols, up_vals = [], [], []
    for vertex in range(n):
        candidates = {int(owner[vertex])} | {int(owner[u]) for u in _neighbours(graph, vertex)}
        cand = np.array(sorted(candidates))
        d = np.array([abs(distances[vertex]) if c == owner[vertex] else abs(distances[vertex]) + 1.0 for c in cand])
        w = 1.0 / (d + 1e-6)
        w /= w.sum()
        up_rows += [vertex] * len(cand)
        up_cols += cand.tolist()
        up_vals += w.tolist()
    up = coo_matrix((up_vals, (up_rows, up_cols)), shape=(n, k)).tocsr()
    return coarse, down, up


def build_pyramid(positions: np.ndarray, triangles: np.ndarray, factors: tuple[int, ...] = (4, 4),
                  spiral_length: int = 9, cache_dir: str | None = None) -> MeshPyramid:
    """Spirals on the full mesh and on levels coarsened by `factors`, cached by mesh digest (as
    plain arrays in an .npz: a cache folder is writable by others, so it never holds a pickle)."""
    key = hashlib.sha256(np.ascontiguousarray(triangles, dtype=np.int64).tobytes()
                         + repr((len(positions), factors, spiral_length)).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"mesh_pyramid_{key}.npz") if cache_dir else None
    if path and os.path.isfile(path):
        cached = _read_pyramid(path, len(factors))
        if cached is not None:
            return cached
    positions = np.asarray(positions, dtype=np.float64)
    normals = vertex_normals(positions, triangles)
    metric = adjacency(triangles, len(positions), positions)
    levels = [MeshLevel(np.arange(len(positions)), metric, spirals(metric, positions, normals, spiral_length))]
    down, up = [], []
    graph, vertices = metric, np.arange(len(positions))
    for factor in factors:
        keep = farthest_point_sample(graph, max(8, graph.shape[0] // factor))
        coarse, d, u = _coarsen(graph, keep)
        vertices = vertices[keep]
        levels.append(MeshLevel(vertices, coarse, spirals(coarse, positions[vertices], normals[vertices], spiral_length)))
        down.append(d)
        up.append(u)
        # distances on the coarse level: edge lengths between the kept vertices
        rows, cols = coarse.nonzero()
        lengths = np.linalg.norm(positions[vertices[rows]] - positions[vertices[cols]], axis=1)
        graph = coo_matrix((lengths, (rows, cols)), shape=coarse.shape).tocsr()
    pyramid = MeshPyramid(levels, down, up)
    if path:
        _write_pyramid(path, pyramid)
    return pyramid


def _sparse_arrays(prefix: str, matrix: csr_matrix) -> dict[str, np.ndarray]:
    return {f"{prefix}_data": matrix.data, f"{prefix}_indices": matrix.indices, f"{prefix}_indptr": matrix.indptr,
            f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64)}


def _sparse(arrays, prefix: str) -> csr_matrix:
    shape = tuple(int(n) for n in arrays[f"{prefix}_shape"])
    return csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape)


def _write_pyramid(path: str, pyramid: MeshPyramid) -> None:
    from .outputs import atomic_output

    arrays: dict[str, np.ndarray] = {}
    for i, level in enumerate(pyramid.levels):
        arrays[f"level{i}_vertices"], arrays[f"level{i}_spirals"] = level.vertices, level.spirals
        arrays.update(_sparse_arrays(f"level{i}_graph", level.graph))
    for i, (down, up) in enumerate(zip(pyramid.down, pyramid.up)):
        arrays.update(_sparse_arrays(f"down{i}", down))
        arrays.update(_sparse_arrays(f"up{i}", up))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_output(path) as handle:
            np.savez(handle, **arrays)
    except (OSError, TalkingHeadError):
        pass  # a cache that cannot be written only costs time next run


def _read_pyramid(path: str, n_factors: int) -> MeshPyramid | None:
    """The cached pyramid, or None when the file is damaged (it is then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            levels = [MeshLevel(arrays[f"level{i}_vertices"], _sparse(arrays, f"level{i}_graph"),
                                arrays[f"level{i}_spirals"]) for i in range(n_factors + 1)]
            down = [_sparse(arrays, f"down{i}") for i in range(n_factors)]
            up = [_sparse(arrays, f"up{i}") for i in range(n_factors)]
    except Exception:  # truncated, foreign or old-format file: rebuilding is always possible
        return None
    return MeshPyramid(levels, down, up)


_FLAME_PYRAMIDS: dict = {}


def flame_pyramid(spiral_length: int, levels: int) -> MeshPyramid:
    """FLAME's pyramid (factor 4 per level), built once per process from the FLAME mesh of
    ../shared or TALKING_HEAD_FLAME and cached on disk. Trained models keep what they need in
    their weights, so this is only needed to build a new model."""
    from .encoders import SETTINGS
    from .errors import ModelError
    from .flame import SHARED_FLAME
    from .mesh_io import read_mesh
    from .whisper import default_cache_dir

    key = (spiral_length, levels)
    if key not in _FLAME_PYRAMIDS:
        for path in (os.environ.get("TALKING_HEAD_FLAME", ""), os.path.join(SHARED_FLAME, "FLAME_sample.ply")):
            if path and os.path.isfile(path):
                positions, triangles = read_mesh(path)
                break
        else:
            raise ModelError("Building a mesh model needs FLAME's mesh: set TALKING_HEAD_FLAME to a FLAME .ply.")
        _FLAME_PYRAMIDS[key] = build_pyramid(positions, triangles, factors=(4,) * max(levels, 1),
                                             spiral_length=spiral_length,
                                             cache_dir=SETTINGS["cache_dir"] or default_cache_dir())
    return _FLAME_PYRAMIDS[key]


def sparse_tensors(name: str, matrix) -> dict:
    """A scipy sparse matrix as index, value and shape tensors (storable in safetensors)."""
    import torch

    coo = matrix.tocoo()
    return {f"{name}_indices": torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
            f"{name}_values": torch.from_numpy(coo.data.astype(np.float32)),
            f"{name}_shape": torch.tensor(coo.shape, dtype=torch.int64)}


def pyramid_tensors(pyramid: MeshPyramid, levels: int) -> dict:
    """spirals_i for each level and down_i maps between consecutive levels, as tensors."""
    import torch

    out = {}
    for i in range(levels + 1):
        out[f"spirals_{i}"] = torch.from_numpy(pyramid.levels[i].spirals)
        if i < levels:
            out.update(sparse_tensors(f"down_{i}", pyramid.down[i]))
    return out


def placeholder_tensors(shapes: dict) -> dict:
    """Zero tensors of recorded shapes (float values, int64 indices): load_state_dict fills them."""
    import torch

    return {name: torch.zeros(shape, dtype=torch.float32 if name.endswith("_values") else torch.int64)
            for name, shape in shapes.items()}
