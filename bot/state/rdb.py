"""Reads Redis 7+ `DUMP` payloads of hashes (RDB_TYPE_HASH, RDB_TYPE_HASH_LISTPACK), checksum first.

`dlq clear` archives each job hash as Redis's own DUMP of it: Redis serialises it in C,
LZF-compressed, five times smaller than the field list; this module turns it back into the fields
for `dlq archive-export`.
"""

from __future__ import annotations

import struct

HASH, HASH_LISTPACK = 4, 16
_POLY = 0x95AC9329AC4BC9B5  # Jones' polynomial, reflected, as Redis's crc64.c uses it


class RdbError(ValueError):
    """A payload that is damaged or of a kind forge does not read."""


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC = _table()


def crc64(data: bytes) -> int:
    """Redis's CRC-64 (Jones); crc64(b"123456789") == 0xE9C6D914C4B8D9CA."""
    crc = 0
    for byte in data:
        crc = _CRC[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def lzf_decompress(data: bytes, length: int) -> bytes:
    """LZF as Redis compresses RDB strings."""
    out, i = bytearray(), 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
            continue
        size = ctrl >> 5
        if size == 7:
            size += data[i]
            i += 1
        start = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        if start < 0:
            raise RdbError("LZF back-reference before the start")
        for k in range(size + 2):
            out.append(out[start + k])
    if len(out) != length:
        raise RdbError(f"LZF gave {len(out)} bytes, expected {length}")
    return bytes(out)


class _Reader:
    """A cursor over the payload's RDB-encoded lengths and strings."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise RdbError("payload ends early")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def length(self) -> tuple[int, bool]:
        """An RDB length, or (encoding, True) for a specially encoded string."""
        first = self.take(1)[0]
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.take(1)[0], False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return struct.unpack(">I", self.take(4))[0], False
        if first == 0x81:
            return struct.unpack(">Q", self.take(8))[0], False
        raise RdbError(f"bad length byte {first:#x}")

    def string(self) -> bytes:
        """An RDB string: raw, an integer, or LZF-compressed."""
        n, special = self.length()
        if not special:
            return self.take(n)
        if n in (0, 1, 2):
            size = 1 << n
            return str(int.from_bytes(self.take(size), "little", signed=True)).encode()
        if n == 3:
            packed, plain = self.length()[0], self.length()[0]
            return lzf_decompress(self.take(packed), plain)
        raise RdbError(f"unknown string encoding {n}")


def _listpack(blob: bytes) -> list[bytes]:
    """The elements of a listpack (Redis 7's small-hash encoding)."""
    count, pos, items = struct.unpack_from("<H", blob, 4)[0], 6, []
    while blob[pos] != 0xFF:
        value, size = _lp_entry(blob, pos)
        items.append(value)
        pos += size + _backlen_size(size)
    if count != 0xFFFF and count != len(items):
        raise RdbError(f"listpack says {count} elements, holds {len(items)}")
    return items


def _lp_entry(blob: bytes, pos: int) -> tuple[bytes, int]:
    """One listpack entry: its value and its size without the back-length."""
    b = blob[pos]
    if b < 0x80:
        return str(b).encode(), 1
    if b & 0xC0 == 0x80:
        n = b & 0x3F
        return blob[pos + 1 : pos + 1 + n], 1 + n
    if b & 0xE0 == 0xC0:
        value = ((b & 0x1F) << 8) | blob[pos + 1]
        return str(value - (1 << 13) if value >= 1 << 12 else value).encode(), 2
    if b & 0xF0 == 0xE0:
        n = ((b & 0x0F) << 8) | blob[pos + 1]
        return blob[pos + 2 : pos + 2 + n], 2 + n
    if b == 0xF0:
        n = struct.unpack_from("<I", blob, pos + 1)[0]
        return blob[pos + 5 : pos + 5 + n], 5 + n
    widths = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}
    if b in widths:
        w = widths[b]
        return str(
            int.from_bytes(blob[pos + 1 : pos + 1 + w], "little", signed=True)
        ).encode(), 1 + w
    raise RdbError(f"unknown listpack encoding {b:#x}")


def _backlen_size(size: int) -> int:
    return (
        1
        if size <= 127
        else 2
        if size < 16383
        else 3
        if size < 2097151
        else 4
        if size < 268435455
        else 5
    )


def read_hash(payload: bytes) -> dict[str, str]:
    """The hash a DUMP payload holds, after checking its CRC-64; raises RdbError when it cannot."""
    if len(payload) < 11:
        raise RdbError("payload too short")
    body, crc = payload[:-8], struct.unpack("<Q", payload[-8:])[0]
    if crc64(body) != crc:
        raise RdbError("checksum mismatch: the archived payload is damaged")
    reader = _Reader(body[:-2])
    kind = reader.take(1)[0]
    if kind == HASH:
        pairs = [reader.string() for _ in range(2 * reader.length()[0])]
    elif kind == HASH_LISTPACK:
        pairs = _listpack(reader.string())
    else:
        raise RdbError(f"RDB type {kind} is not a plain hash")
    text = [p.decode("utf-8", errors="replace") for p in pairs]
    return dict(zip(text[::2], text[1::2], strict=True))
