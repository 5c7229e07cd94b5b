"""The Redis backend: durable queues on a Redis server (6.2+), in Streams
with consumer groups, shared by any number of processes and machines.
Needs redis-py: ``pip install "flinq[redis]"``. See docs/redis.md.

One module per job:
  connection  connecting by URL or client, version check, errors, blocking waits
  keys        what is where under the store's prefix
  scripts     the Lua scripts: every step that must be atomic
  queue       RedisQueue and RedisMessage
  inspect     flinq stats / peek on a Redis store
  store       RedisStore: the parts put together
  server      a private redis-server for tests and benchmarks
"""

from flinq.redisstore.queue import RedisMessage, RedisQueue
from flinq.redisstore.store import RedisStore, open_stores

__all__ = ["RedisMessage", "RedisQueue", "RedisStore", "open_stores"]
