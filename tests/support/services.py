"""Where tests find the machine's Redis; FORGE_TEST_REDIS_SERVER gives parallel runs their own."""

from __future__ import annotations

import os

REDIS_SERVER = os.environ.get("FORGE_TEST_REDIS_SERVER", "127.0.0.1:6379")


def redis_url(db: int) -> str:
    """The URL of one numbered database on the tests' Redis."""
    return f"redis://{REDIS_SERVER}/{db}"
