"""Software previews of heads: a small z-buffer rasteriser and a PNG writer, no GPU, no bpy.

Used for the contact sheets in the README and for the demo's preview; good enough to judge
mouth shapes, not meant as a renderer.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

INTERIOR_SHADE = 0.08  # brightness of back-facing triangles (the mouth interior), 0..1

VIEWS = {
    "front": np.eye(3),
    # looking at the head's left side: canonical -z becomes screen x
    "side": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
}


def render(vertices: np.ndarray, triangles: np.ndarray, view: str = "front", size: int = 256,
           bounds: tuple[np.ndarray, float] | None = None, crop: float = 1.0) -> np.ndarray:
    """Grey-shaded orthographic image (size, size) uint8 of a mesh in FLAME's canonical frame.

    `bounds` (centre, half-width) fixes the framing so frames of one clip line up; `crop` < 1 zooms in.
    """
    points = np.asarray(vertices, dtype=np.float64) @ VIEWS[view].T
    if bounds is None:
        centre = (points.max(0) + points.min(0)) / 2
        half = (points.max(0) - points.min(0))[:2].max() / 2 * 1.05
    else:
        centre, half = bounds
    half *= crop
    scale = (size / 2) / half
    xy = np.empty((len(points), 2))
    xy[:, 0] = (points[:, 0] - centre[0]) * scale + size / 2
    xy[:, 1] = size / 2 - (points[:, 1] - centre[1]) * scale
    depth = points[:, 2]

    tri = np.asarray(triangles)
    a, b, c = points[tri[:, 0]], points[tri[:, 1]], points[tri[:, 2]]
    normals = np.cross(b - a, c - a)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    shade = 0.15 + 0.85 * np.clip(np.abs(normals @ light), 0, 1)
    # FLAME's triangles wind outwards, so a triangle facing away from the viewer is the inside of the
    # head seen through the open lips: drawn dark, as a mouth interior, so a slit reads as a dark line
    # and sealed lips as none
    shade = np.where(normals[:, 2] < 0, INTERIOR_SHADE + 0.05 * shade, shade)

    zbuffer = np.full((size, size), -np.inf)
    image = np.full((size, size), 40.0)
    for t in np.argsort(-np.abs(normals[:, 2])):  # order does not matter with a z-buffer; kept stable
        p = xy[tri[t]]
        x0, y0 = np.floor(p.min(0)).astype(int)
        x1, y1 = np.ceil(p.max(0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size - 1), min(y1, size - 1)
        if x0 > x1 or y0 > y1:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        (ax, ay), (bx, by), (cx, cy) = p
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) < 1e-12:
            continue
        w0 = ((bx - gx) * (cy - gy) - (by - gy) * (cx - gx)) / area
        w1 = ((cx - gx) * (ay - gy) - (cy - gy) * (ax - gx)) / area
        w2 = 1 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        if not inside.any():
            continue
        z = w0 * depth[tri[t, 0]] + w1 * depth[tri[t, 1]] + w2 * depth[tri[t, 2]]
        region_z = zbuffer[y0:y1 + 1, x0:x1 + 1]
        closer = inside & (z > region_z)
        region_z[closer] = z[closer]
        image[y0:y1 + 1, x0:x1 + 1][closer] = 255 * shade[t]
    return image.astype(np.uint8)


def frame_bounds(vertices: np.ndarray, view: str = "front") -> tuple[np.ndarray, float]:
    points = np.asarray(vertices, dtype=np.float64) @ VIEWS[view].T
    centre = (points.max(0) + points.min(0)) / 2
    return centre, (points.max(0) - points.min(0))[:2].max() / 2 * 1.05


def grid(images: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Tile equally sized images into one sheet."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    sheet = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    return sheet


def write_png(path: str, image: np.ndarray) -> None:
    """Write a greyscale (H, W) or RGB (H, W, 3) uint8 image as PNG."""
    from .outputs import atomic_output

    image = np.ascontiguousarray(image, dtype=np.uint8)
    colour = 2 if image.ndim == 3 else 0
    h, w = image.shape[:2]
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with atomic_output(path) as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)))
        handle.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        handle.write(chunk(b"IEND", b""))
