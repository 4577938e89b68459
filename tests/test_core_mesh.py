import numpy as np
import pytest

from conftest import shared_path
from core.errors import OutputError, TopologyError
from core.flame import N_VERTICES, check_topology, load_template, triangles_digest
from core.head_frame import estimate_head_frame
from core.mesh_io import read_mesh, read_pc2, write_npy, write_pc2
from core.outputs import atomic_output

FLAME_FILES = ["flame/FLAME_sample.ply", "flame/FLAME_sample_02.ply", "flame/template.ply",
               "flame/registered_mesh.ply", "flame/texture_mesh.obj"]


@pytest.mark.parametrize("relative", FLAME_FILES)
def test_every_shared_flame_head_is_accepted(relative):
    verts = load_template(str(shared_path(relative)))
    assert verts.shape == (N_VERTICES, 3)


def test_face_order_and_winding_do_not_matter(flame_mesh):
    _, tris = flame_mesh
    shuffled = np.random.default_rng(0).permutation(tris)[:, ::-1]
    assert triangles_digest(shuffled) == triangles_digest(tris)


def test_wrong_vertex_count_names_what_was_found(flame_mesh):
    with pytest.raises(TopologyError, match=r"has 8 vertices; .*5023 vertices"):
        check_topology(8, np.array([[0, 1, 2]]), "Cube")


def test_same_count_but_other_connectivity_is_refused(flame_mesh):
    _, tris = flame_mesh
    rewired = tris.copy()
    rewired[rewired == 10], rewired[rewired == 20] = -1, 10
    rewired[rewired == -1] = 20
    rewired[0] = [0, 1, 2]
    with pytest.raises(TopologyError, match="do not connect them the way FLAME does"):
        check_topology(N_VERTICES, rewired, "Head")


def test_head_frame_recovers_rotation_and_unit(flame_mesh):
    verts, tris = flame_mesh
    z_up = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)  # what Y-up to Z-up importers do
    frame = estimate_head_frame((verts @ z_up.T) * 100.0, tris)  # and a centimetre rig
    assert frame.scale == 100.0
    np.testing.assert_allclose(frame.rotation, z_up, atol=1e-9)
    offsets = np.random.default_rng(1).normal(size=(4, N_VERTICES, 3)).astype(np.float32)
    np.testing.assert_allclose(frame.offsets_to_local(offsets), 100.0 * offsets @ z_up.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(frame.points_to_canonical((verts @ z_up.T) * 100.0), verts, atol=1e-5)


def test_pc2_round_trip(tmp_path):
    frames = np.random.default_rng(2).normal(size=(5, 7, 3)).astype(np.float32)
    path = tmp_path / "a.pc2"
    write_pc2(str(path), frames, start_frame=3.0)
    back, start, sampling = read_pc2(str(path))
    np.testing.assert_array_equal(back, frames)
    assert (start, sampling) == (3.0, 1.0)
    assert path.stat().st_size == 32 + frames.nbytes


def test_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    path = tmp_path / "keep.npy"
    write_npy(str(path), np.zeros(3))
    with pytest.raises(ValueError):
        write_pc2(str(path), np.zeros((2, 3)))  # wrong shape: refused before anything is written
    with pytest.raises(RuntimeError):
        with atomic_output(str(path)) as handle:  # a writer that dies half-way
            handle.write(b"half a file")
            raise RuntimeError("disk full")
    assert np.load(path).tolist() == [0, 0, 0]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npy"]
    with pytest.raises(OutputError, match="does not exist"):
        write_npy(str(tmp_path / "nope" / "x.npy"), np.zeros(2))


def test_obj_and_ply_read_the_same_topology():
    _, ply_tris = read_mesh(str(shared_path("flame/FLAME_sample.ply")))
    _, obj_tris = read_mesh(str(shared_path("flame/texture_mesh.obj")))
    assert triangles_digest(ply_tris) == triangles_digest(obj_tris)


def test_frames_written_block_by_block_read_back_whole_and_a_short_count_writes_nothing(tmp_path):
    from core.mesh_io import write_frame_blocks

    frames = np.random.default_rng(0).normal(size=(10, 7, 3)).astype(np.float32)
    blocks = [frames[:4], frames[4:9], frames[9:]]
    write_frame_blocks(str(tmp_path / "m.npy"), iter(blocks), 10, 7, "npy")
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), frames)
    write_frame_blocks(str(tmp_path / "m.pc2"), iter(blocks), 10, 7, "pc2", start_frame=2.0)
    back, start, _ = read_pc2(str(tmp_path / "m.pc2"))
    np.testing.assert_array_equal(back, frames)
    assert start == 2.0
    with pytest.raises(ValueError, match="9 frames written"):
        write_frame_blocks(str(tmp_path / "short.npy"), iter(blocks[:2]), 10, 7, "npy")
    assert not (tmp_path / "short.npy").exists()
