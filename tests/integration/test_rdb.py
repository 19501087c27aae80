"""Redis DUMP payloads of job hashes read back by bot/rdb.py, on the real Redis that wrote them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.state.rdb import RdbError, crc64, read_hash
from tests.conftest import empty_redis
from tests.support.services import redis_url

pytestmark = pytest.mark.integration
URL = redis_url(11)
STACK = json.dumps(["Error: boom\n" + "    at Worker.processJob (worker.js:123:45)\n" * 30] * 3)
INTS = [
    0,
    1,
    127,
    128,
    4095,
    -4096,
    4096,
    32767,
    -32768,
    40000,
    8388607,
    -8388608,
    2**31 - 1,
    -(2**31),
    2**63 - 1,
    -(2**63),
]
HASHES = {
    "job": {
        "name": "send-email",
        "data": json.dumps({"to": "a@example.com"}),
        "opts": '{"attempts":3}',
        "timestamp": "1700000000000",
        "atm": "3",
        "failedReason": "boom",
        "stacktrace": STACK,
    },
    "small": {"a": "1", "b": "hello", "empty": "", "unicode": "ünïcødé ✓ 日本", "neg": "-12"},
    "integers": {f"k{n}": str(n) for n in INTS}
    | {"beyond": "12345678901234567890", "lead": "007", "plus": "+5"},
    "compressible": {"s": "a" * 63, "t": "b" * 40 + "c" * 23},
}


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """A Redis database of this test's own."""
    async with empty_redis(URL) as client:
        yield client


def test_crc64_is_redis_jones_crc():
    """The check value Redis's crc64.c tests itself with."""
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA


@pytest.mark.parametrize("name", sorted(HASHES))
async def test_dumps_read_back_exactly(rdb, name):
    """Listpack and hashtable encodings, integers of every width, LZF-compressed strings, UTF-8:
    what DUMP wrote reads back as HGETALL shows it."""
    await rdb.hset(name, mapping=HASHES[name])
    assert read_hash(await rdb.dump(name)) == await rdb.hgetall(name)


async def test_long_listpack_strings(rdb):
    """Listpack strings of 12-bit and 32-bit lengths (a server keeping long values in listpacks)."""
    before = (await rdb.config_get("hash-max-listpack-value"))["hash-max-listpack-value"]
    await rdb.config_set("hash-max-listpack-value", 8192)
    try:
        await rdb.hset(
            "long",
            mapping={"mid": "x" * 300, "big": "".join(chr(65 + i % 26) for i in range(5000))},
        )
        assert await rdb.object("encoding", "long") == "listpack"
        assert read_hash(await rdb.dump("long")) == await rdb.hgetall("long")
    finally:
        await rdb.config_set("hash-max-listpack-value", before)


async def test_damage_is_detected(rdb):
    """A flipped byte fails the CRC-64; a truncated payload or one of another type is refused."""
    await rdb.hset("job", mapping=HASHES["job"])
    payload = bytearray(await rdb.dump("job"))
    payload[5] ^= 0x01
    with pytest.raises(RdbError, match="checksum"):
        read_hash(bytes(payload))
    with pytest.raises(RdbError):
        read_hash(bytes(payload[:6]))
    await rdb.rpush("list", "a", "b")
    with pytest.raises(RdbError, match="not a plain hash"):
        read_hash(await rdb.dump("list"))
