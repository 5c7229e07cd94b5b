"""flinq: fast queues for Python with a C hot path.

Drop-in for the stdlib's queue module: ``import flinq as queue`` works for code
that uses Queue, SimpleQueue, LifoQueue, PriorityQueue and the stdlib's
exceptions, which flinq raises as they are (``except queue.Empty`` keeps
working).

Durable named queues live in a Store: ``flinq.open(path).queue(name)``.
Every queue also delivers at least once: ``q.reserve()`` and ``msg.ack()``,
``q.messages()``, and worker threads with retries through ``q.consume(handler)``.
"""

from queue import Empty, Full

from flinq._compat import ShutDown
from flinq._core import LifoQueue, LocalMessage, PriorityQueue, Queue, SimpleQueue
from flinq.consumer import Consumer
from flinq.durable import DurableQueue, Message
from flinq.errors import (
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreForkedError,
    StoreLockedError,
    StorePermissionError,
    StoreVersionError,
    StoreWriteError,
)
from flinq.store import Store, open

__version__ = "0.1.0"

__all__ = [
    "Consumer",
    "DurableQueue",
    "Empty",
    "Full",
    "LifoQueue",
    "LocalMessage",
    "Message",
    "PriorityQueue",
    "Queue",
    "ShutDown",
    "SimpleQueue",
    "Store",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreForkedError",
    "StoreLockedError",
    "StorePermissionError",
    "StoreVersionError",
    "StoreWriteError",
    "__version__",
    "open",
]
