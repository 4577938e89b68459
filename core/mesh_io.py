"""Mesh and vertex-animation files: PLY/OBJ/NPY templates in, NPY/PC2 animations out.

Writers go through core.outputs.atomic_output (a temporary file and an atomic rename), so an
interrupted or failed write never leaves a half-written file where the user expects a result.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from .errors import TopologyError
from .outputs import atomic_output

PC2_HEADER = struct.Struct("<12siiffi")
PC2_MAGIC = b"POINTCACHE2\0"

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def read_mesh(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices (V, 3) float32 and triangles (F, 3) int64 (None for .npy) from .ply, .obj or .npy."""
    if not os.path.isfile(path):
        raise TopologyError(f"Mesh file not found: {path}. Give a FLAME-topology .ply, .obj or .npy file.")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".ply", ".obj", ".npy"):
        raise TopologyError(f"Unsupported mesh format '{ext}' for {path}. Use .ply, .obj or .npy.")
    try:
        if ext == ".ply":
            verts, faces = _read_ply(path)
        elif ext == ".obj":
            verts, faces = _read_obj(path)
        else:
            verts, faces = _as_vertex_array(read_npy(path, "mesh"), path), None
    except TopologyError:
        raise
    except Exception as exc:  # a corrupt file surfaces as many kinds of parsing error
        raise TopologyError(f"Could not read mesh {path}: {exc}. Give a valid .ply, .obj or .npy file.") from None
    return check_mesh_values(verts, faces, path)


def check_mesh_values(verts: np.ndarray, faces: np.ndarray | None, path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Refuse vertex positions that are NaN or infinite and faces that point past the vertices."""
    bad = int(np.count_nonzero(~np.isfinite(verts)))
    if bad:
        raise TopologyError(f"{path} has {bad} NaN or infinite vertex coordinates; re-export the mesh.")
    if faces is not None and faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise TopologyError(f"{path} has faces that refer to vertices it does not have; re-export the mesh.")
    return verts, faces


def read_npy(path: str, what: str = "array") -> np.ndarray:
    """A plain numeric array from a .npy file: never unpickles, and says what is wrong with a file
    that is truncated, corrupt, or holds Python objects."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise TopologyError(f"{path} holds Python objects (pickled data), not a {what} of numbers. Save it with "
                                "numpy.save of a float array.") from None
        raise TopologyError(f"{path} is not a valid .npy file ({exc}); it may be truncated. Save it again.") from None
    except (OSError, EOFError) as exc:
        raise TopologyError(f"Cannot read {path} ({exc}); it may be truncated or not a .npy file.") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        raise TopologyError(f"{path} is an .npz archive, not a .npy {what}. Save one array with numpy.save.")
    if array.dtype.kind not in "fiu":
        raise TopologyError(f"{path} holds {array.dtype} values, not a {what} of numbers.")
    return array


def _as_vertex_array(verts: np.ndarray, path: str) -> np.ndarray:
    verts = np.asarray(verts, dtype=np.float32)
    if verts.ndim == 1 and verts.size % 3 == 0:
        verts = verts.reshape(-1, 3)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise TopologyError(f"{path}: expected vertex positions of shape (V, 3) or (V*3,), got {verts.shape}.")
    return verts


def _read_ply(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as handle:
        if handle.readline().strip() != b"ply":
            raise TopologyError(f"{path} is not a PLY file (no 'ply' magic line).")
        fmt = ""
        elements: list[tuple[str, int, list[tuple]]] = []
        while True:
            line = handle.readline()
            if not line:
                raise TopologyError(f"{path}: PLY header has no end_header line.")
            words = line.decode("ascii", "replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property":
                if words[1] == "list":
                    elements[-1][2].append((words[4], "list", _PLY_TYPES[words[2]], _PLY_TYPES[words[3]]))
                else:
                    elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
            elif words[0] == "end_header":
                break
        if fmt == "ascii":
            body = handle.read().decode("ascii").split()
            return _parse_ply_ascii(body, elements, path)
        if fmt not in ("binary_little_endian", "binary_big_endian"):
            raise TopologyError(f"{path}: unsupported PLY format '{fmt}'.")
        endian = "<" if fmt == "binary_little_endian" else ">"
        data = handle.read()
    return _parse_ply_binary(data, elements, endian, path)


def _parse_ply_binary(data: bytes, elements, endian: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    offset = 0
    verts = faces = None
    for name, count, props in elements:
        if all(len(p) == 2 for p in props):
            dtype = np.dtype([(p[0], endian + p[1]) for p in props])
            table = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            offset += dtype.itemsize * count
            if name == "vertex":
                verts = np.stack([table["x"], table["y"], table["z"]], axis=1).astype(np.float32)
        elif name == "face" and len(props) == 1 and props[0][1] == "list":
            count_dtype = np.dtype(endian + props[0][2])
            index_dtype = np.dtype(endian + props[0][3])
            first = int(np.frombuffer(data, count_dtype, 1, offset)[0])
            row = np.dtype([("n", count_dtype), ("idx", index_dtype, (first,))])
            table = np.frombuffer(data, dtype=row, count=count, offset=offset)
            if np.any(table["n"] != first):
                raise TopologyError(f"{path}: faces with different corner counts; FLAME meshes are all triangles.")
            faces = table["idx"].astype(np.int64)
            offset += row.itemsize * count
        else:
            raise TopologyError(f"{path}: PLY element '{name}' has a layout this reader does not handle.")
    if verts is None or faces is None:
        raise TopologyError(f"{path}: PLY file needs vertex and face elements.")
    return verts, faces


def _parse_ply_ascii(body: list[str], elements, path: str) -> tuple[np.ndarray, np.ndarray]:
    pos = 0
    verts = faces = None
    for name, count, props in elements:
        if name == "vertex":
            width = len(props)
            table = np.array(body[pos:pos + width * count], dtype=np.float64).reshape(count, width)
            names = [p[0] for p in props]
            verts = table[:, [names.index("x"), names.index("y"), names.index("z")]].astype(np.float32)
            pos += width * count
        elif name == "face":
            rows = []
            for _ in range(count):
                n = int(body[pos])
                rows.append([int(v) for v in body[pos + 1:pos + 1 + n]])
                pos += 1 + n
            if any(len(r) != 3 for r in rows):
                raise TopologyError(f"{path}: faces that are not triangles; FLAME meshes are all triangles.")
            faces = np.array(rows, dtype=np.int64)
        else:
            pos += len(props) * count
    if verts is None or faces is None:
        raise TopologyError(f"{path}: PLY file needs vertex and face elements.")
    return verts, faces


def _read_obj(path: str) -> tuple[np.ndarray, np.ndarray]:
    verts: list[list[float]] = []
    faces: list[list[int]] = []
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("v "):
                verts.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                corners = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                corners = [c - 1 if c > 0 else len(verts) + c for c in corners]
                # fan-triangulate so a quad mesh is reported by its connectivity, not refused at read time
                faces.extend([corners[0], corners[i], corners[i + 1]] for i in range(1, len(corners) - 1))
    if not verts:
        raise TopologyError(f"{path}: no vertices ('v' lines) in this OBJ file.")
    return np.array(verts, dtype=np.float32), np.array(faces, dtype=np.int64).reshape(-1, 3)


def write_pc2(path: str, frames: np.ndarray, start_frame: float = 0.0, sampling: float = 1.0,
              overwrite: bool = True) -> None:
    """Write absolute vertex positions (T, V, 3) as a little-endian PC2 point cache."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[2] != 3:
        raise ValueError(f"PC2 needs frames of shape (T, V, 3), got {frames.shape}")
    write_frame_blocks(path, [frames], frames.shape[0], frames.shape[1], "pc2", start_frame, sampling, overwrite)


def write_frame_blocks(path: str, blocks, n_frames: int, n_vertices: int, kind: str = "npy",
                       start_frame: float = 0.0, sampling: float = 1.0, overwrite: bool = True) -> None:
    """Write (n_frames, n_vertices, 3) float32 positions as .npy or PC2 block by block (`blocks`
    yields (b, n_vertices, 3) arrays in order), so a long take never sits whole in memory; the
    file appears only once every frame is written."""
    with atomic_output(path, overwrite=overwrite) as handle:
        if kind == "pc2":
            handle.write(PC2_HEADER.pack(PC2_MAGIC, 1, n_vertices, float(start_frame), float(sampling), n_frames))
        else:
            np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                                                          "fortran_order": False, "shape": (n_frames, n_vertices, 3)})
        written = 0
        for block in blocks:
            block = np.ascontiguousarray(block, dtype="<f4")
            if block.ndim != 3 or block.shape[1:] != (n_vertices, 3):
                raise ValueError(f"frames of shape (T, {n_vertices}, 3) expected, got {block.shape}")
            handle.write(block.tobytes())
            written += len(block)
        if written != n_frames:
            raise ValueError(f"{written} frames written where {n_frames} were announced")


def read_pc2(path: str) -> tuple[np.ndarray, float, float]:
    """Frames (T, V, 3), start frame and sampling of a PC2 file; the header is checked against the
    file's size before anything is read."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            header = handle.read(PC2_HEADER.size)
            if len(header) < PC2_HEADER.size or header[:12] != PC2_MAGIC:
                raise TopologyError(f"{path} is not a PC2 point cache (no POINTCACHE2 header).")
            _, version, n_verts, start, sampling, n_frames = PC2_HEADER.unpack(header)
            if n_verts <= 0 or n_frames < 0:
                raise TopologyError(f"{path}: PC2 header is corrupt ({n_verts} vertices, {n_frames} frames).")
            expected = PC2_HEADER.size + n_frames * n_verts * 12
            if size < expected:
                raise TopologyError(f"{path} is truncated: its header promises {n_frames} frames of {n_verts} vertices "
                                    f"({expected} bytes) but the file has {size}. Write the cache again.")
            data = np.fromfile(handle, dtype="<f4", count=n_frames * n_verts * 3)
    except OSError as exc:
        raise TopologyError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    frames = data.reshape(n_frames, n_verts, 3).astype(np.float32)
    if not np.all(np.isfinite(frames)):
        raise TopologyError(f"{path} holds NaN or infinite positions; write the cache again.")
    return frames, start, sampling


def write_npy(path: str, array: np.ndarray, overwrite: bool = True) -> None:
    with atomic_output(path, overwrite=overwrite) as handle:
        np.save(handle, array)
