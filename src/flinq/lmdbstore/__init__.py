"""The LMDB backend: durable queues in an LMDB environment on this machine.

One module per job:
  files      the store directory: claiming it, private files, no links
  verify     checking the data file before LMDB maps it
  layout     what is where in LMDB (meta, queue settings, queue databases)
  ids        message ids: a plain integer, reserved ahead in meta
  log        the pending log and group commit
  scheduler  timed work: redeliveries, delayed nacks
  writer     the writer thread: commits, timers, status file updates
  status     the status file other processes read
  state      open, closing, closed, forked, failed
  lifecycle  fork() and interpreter exit
  queue      DurableQueue and Message
  inspect    flinq stats / peek / purge / requeue on committed state
  store      Store: the parts put together
"""

from flinq.lmdbstore.lifecycle import open_stores as _tracked
from flinq.lmdbstore.queue import DurableQueue, Message
from flinq.lmdbstore.store import Store

__all__ = ["DurableQueue", "Message", "Store", "open_stores"]


def open_stores() -> list[Store]:
    """The LMDB stores open in this process."""
    return [store for store in _tracked() if isinstance(store, Store)]
