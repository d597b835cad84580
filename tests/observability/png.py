"""A minimal PNG decoder for screenshot checks (8-bit RGB/RGBA, not interlaced)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = ["Image", "decode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # colour type -> bytes per pixel (RGB, RGBA)


@dataclass(frozen=True, slots=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = x * self.channels
        r, g, b = self.rows[y][i : i + 3]
        return r, g, b

    def where(self, colour: tuple[int, int, int], tolerance: int = 12) -> list[tuple[int, int]]:
        """(x, y) of the pixels within ``tolerance`` of ``colour`` on every channel."""
        r0, g0, b0 = colour
        step = self.channels
        return [
            (i // step, y)
            for y, row in enumerate(self.rows)
            for i in range(0, len(row), step)
            if abs(row[i] - r0) <= tolerance
            and abs(row[i + 1] - g0) <= tolerance
            and abs(row[i + 2] - b0) <= tolerance
        ]

    def count(self, colour: tuple[int, int, int], tolerance: int = 12) -> int:
        """Pixels within ``tolerance`` of ``colour`` on every channel."""
        return len(self.where(colour, tolerance))


def decode_png(data: bytes) -> Image:
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG")
    pos, idat = len(_SIGNATURE), bytearray()
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in _CHANNELS or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
            channels = _CHANNELS[colour]
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], row, previous, channels)
        rows.append(bytes(row))
        previous = row
    return Image(width, height, channels, rows)


def _unfilter(kind: int, row: bytearray, up: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        above = up[i]
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + above) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + ((left + above) >> 1)) & 0xFF
        elif kind == 4:
            corner = up[i - bpp] if i >= bpp else 0
            p = left + above - corner
            pa, pb, pc = abs(p - left), abs(p - above), abs(p - corner)
            best = left if pa <= pb and pa <= pc else above if pb <= pc else corner
            row[i] = (row[i] + best) & 0xFF
        else:
            raise ValueError(f"bad PNG filter {kind}")
