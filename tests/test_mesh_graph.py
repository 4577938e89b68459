"""Spirals and the mesh pyramid shared by the emotion and diffusion models."""

from __future__ import annotations

import numpy as np

from conftest import shared_path


def _grid(n: int = 5):
    """A flat n x n grid in the xy-plane, triangulated with one diagonal per square, facing +z."""
    positions = np.array([[x, y, 0.0] for y in range(n) for x in range(n)])
    triangles = []
    for y in range(n - 1):
        for x in range(n - 1):
            a, b, c, d = y * n + x, y * n + x + 1, (y + 1) * n + x, (y + 1) * n + x + 1
            triangles += [[a, b, d], [a, d, c]]
    return positions, np.array(triangles)


def test_spiral_is_the_vertex_then_its_rings_counter_clockwise():
    from core.mesh_graph import adjacency, spirals, vertex_normals

    positions, triangles = _grid()
    graph = adjacency(triangles, len(positions))
    spiral = spirals(graph, positions, vertex_normals(positions, triangles), 13)[12]  # the centre (2, 2)
    assert spiral[0] == 12
    ring1 = set(spiral[1:7].tolist())
    assert ring1 == {7, 13, 17, 11, 18, 6}
    angles = [np.arctan2(*(positions[v] - positions[12])[[1, 0]]) for v in spiral[1:7]]
    start = positions[min(ring1)] - positions[12]
    relative = np.mod(np.array(angles) - np.arctan2(start[1], start[0]), 2 * np.pi)
    assert np.all(np.diff(relative) > 0)  # counter-clockwise seen from +z, starting at the lowest index
    assert set(spiral[7:13].tolist()) <= {0, 1, 2, 3, 4, 5, 9, 10, 14, 15, 19, 20, 21, 22, 23, 24, 8, 16}


def test_corner_spiral_is_padded_and_stays_in_its_component():
    from core.mesh_graph import adjacency, spirals, vertex_normals

    positions, triangles = _grid(2)  # four vertices
    graph = adjacency(triangles, len(positions))
    spiral = spirals(graph, positions, vertex_normals(positions, triangles), 6)
    assert spiral.shape == (4, 6)
    assert spiral[0, 0] == 0 and set(spiral[0, :4].tolist()) == {0, 1, 2, 3} and spiral[0, 4] == spiral[0, 5] == 0


def test_flame_pyramid_is_cached_and_its_operators_average(tmp_path):
    from core.mesh_graph import build_pyramid
    from core.mesh_io import read_mesh

    positions, triangles = read_mesh(str(shared_path("flame/FLAME_sample.ply")))
    pyramid = build_pyramid(positions, triangles, factors=(4, 4), spiral_length=9, cache_dir=str(tmp_path))
    sizes = [len(level.vertices) for level in pyramid.levels]
    assert sizes[0] == 5023 and sizes[1] == 5023 // 4 and sizes[2] == sizes[1] // 4
    for down, up in zip(pyramid.down, pyramid.up):
        assert np.allclose(np.asarray(down.sum(axis=1)).ravel(), 1.0)
        assert np.allclose(np.asarray(up.sum(axis=1)).ravel(), 1.0)
    # a smooth field survives down- then up-sampling closely
    field = positions[:, 1:2]
    restored = pyramid.up[0] @ (pyramid.down[0] @ field)
    assert np.abs(restored - field).mean() < 0.004
    assert all((level.spirals >= 0).all() and (level.spirals < len(level.vertices)).all() for level in pyramid.levels)
    assert len(list(tmp_path.glob("mesh_pyramid_*.npz"))) == 1
    again = build_pyramid(positions, triangles, factors=(4, 4), spiral_length=9, cache_dir=str(tmp_path))
    assert np.array_equal(again.levels[2].spirals, pyramid.levels[2].spirals)
