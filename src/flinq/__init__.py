"""flinq: fast queues for Python with a C hot path.

Drop-in for the stdlib's queue module: ``import flinq as queue`` works for code
that uses Queue, SimpleQueue, LifoQueue, PriorityQueue and the stdlib's
exceptions, which flinq raises as they are (``except queue.Empty`` keeps
working).

Durable named queues live in a store: ``flinq.open(path_or_url).queue(name)``
(flinq.protocols says what every store, queue and message offers).
Every queue also delivers at least once: ``q.reserve()`` and ``msg.ack()``,
``q.messages()``, and worker threads with retries through ``q.consume(handler)``.

``ArrayQueue`` moves fixed-size numpy records by memcpy, with no Python object
per record (needs numpy: ``pip install 'flinq[numpy]'``; ``import flinq`` does not).
Between processes: ``flinq.ProcessQueue``, drop-in for ``multiprocessing.Queue``,
over shared memory.
"""

from queue import Empty, Full

from flinq import protocols
from flinq._array import ArrayQueue
from flinq._compat import ShutDown
from flinq._core import LifoQueue, LocalMessage, PriorityQueue, Queue, SimpleQueue
from flinq._process import ProcessMessage, ProcessQueue
from flinq.backends import open
from flinq.consumer import Consumer
from flinq.errors import (
    StoreClosedError,
    StoreConnectionError,
    StoreCorruptError,
    StoreError,
    StoreForkedError,
    StoreLockedError,
    StoreNotFoundError,
    StorePermissionError,
    StoreVersionError,
    StoreWriteError,
)
from flinq.lmdbstore import DurableQueue, Message, Store
from flinq.settings import QueueSettings

__version__ = "0.1.0"

__all__ = [
    "ArrayQueue",
    "Consumer",
    "DurableQueue",
    "Empty",
    "Full",
    "LifoQueue",
    "LocalMessage",
    "Message",
    "PriorityQueue",
    "ProcessMessage",
    "ProcessQueue",
    "Queue",
    "QueueSettings",
    "ShutDown",
    "SimpleQueue",
    "Store",
    "StoreClosedError",
    "StoreConnectionError",
    "StoreCorruptError",
    "StoreError",
    "StoreForkedError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StorePermissionError",
    "StoreVersionError",
    "StoreWriteError",
    "__version__",
    "open",
    "protocols",
]
