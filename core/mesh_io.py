"""Mesh and vertex-animation files: PLY/OBJ/NPY templates in, NPY/PC2 animations out.

Writers go through a temporary file and an atomic rename, so an interrupted or failed write
never leaves a half-written file where the user expects a result.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from typing import Iterator

import numpy as np

from .errors import OutputError, TopologyError

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
    try:
        if ext == ".ply":
            return _read_ply(path)
        if ext == ".obj":
            return _read_obj(path)
        if ext == ".npy":
            verts = np.load(path, allow_pickle=False)
            return _as_vertex_array(verts, path), None
    except TopologyError:
        raise
    except Exception as exc:
        raise TopologyError(f"Could not read mesh {path}: {exc}. Give a valid .ply, .obj or .npy file.") from None
    raise TopologyError(f"Unsupported mesh format '{ext}' for {path}. Use .ply, .obj or .npy.")


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


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "wb") -> Iterator:
    """Open a temporary file beside `path`; it replaces `path` only if the block finishes."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"Output folder does not exist: {folder}. Create it or choose another output path.")
    fd, tmp = tempfile.mkstemp(prefix=".talkinghead-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_pc2(path: str, frames: np.ndarray, start_frame: float = 0.0, sampling: float = 1.0) -> None:
    """Write absolute vertex positions (T, V, 3) as a little-endian PC2 point cache."""
    frames = np.ascontiguousarray(frames, dtype="<f4")
    if frames.ndim != 3 or frames.shape[2] != 3:
        raise ValueError(f"PC2 needs frames of shape (T, V, 3), got {frames.shape}")
    header = PC2_HEADER.pack(PC2_MAGIC, 1, frames.shape[1], float(start_frame), float(sampling), frames.shape[0])
    with atomic_output(path) as handle:
        handle.write(header)
        handle.write(frames.tobytes())


def read_pc2(path: str) -> tuple[np.ndarray, float, float]:
    """Frames (T, V, 3), start frame and sampling of a PC2 file."""
    with open(path, "rb") as handle:
        magic, version, n_verts, start, sampling, n_frames = PC2_HEADER.unpack(handle.read(PC2_HEADER.size))
        if magic != PC2_MAGIC:
            raise TopologyError(f"{path} is not a PC2 point cache.")
        data = np.frombuffer(handle.read(), dtype="<f4", count=n_frames * n_verts * 3)
    return data.reshape(n_frames, n_verts, 3).astype(np.float32), start, sampling


def write_npy(path: str, array: np.ndarray) -> None:
    with atomic_output(path) as handle:
        np.save(handle, array)
