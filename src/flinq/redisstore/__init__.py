"""The Redis backend: durable queues on a Redis server (6.2+), in Streams
with consumer groups, shared by any number of processes and machines.
Needs redis-py: ``pip install "flinq[redis]"``. See docs/redis.md.

One module per job:
  urls        Redis URLs: passwords redacted, the prefix argument
  connection  connecting by URL or client, version check, errors, blocking waits
  keys        what is where under the store's prefix
  scripts     the Lua scripts: every step that must be atomic
  queue       RedisQueue and RedisMessage
  inspect     flinq stats / peek on a Redis store
  store       RedisStore: the parts put together
  server      a private redis-server for tests and benchmarks

RedisStore, RedisQueue and RedisMessage are imported on first use, so that
urls and server work without redis-py.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RedisMessage", "RedisQueue", "RedisStore", "open_stores"]

_WHERE = {
    "RedisMessage": "flinq.redisstore.queue",
    "RedisQueue": "flinq.redisstore.queue",
    "RedisStore": "flinq.redisstore.store",
    "open_stores": "flinq.redisstore.store",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'flinq.redisstore' has no attribute {name!r}")
