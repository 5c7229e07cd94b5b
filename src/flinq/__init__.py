"""flinq: fast queues for Python with a C hot path.

Drop-in for the stdlib's queue module: ``import flinq as queue`` works for code
that uses Queue, SimpleQueue, LifoQueue, PriorityQueue and the stdlib's
exceptions, which flinq raises as they are (``except queue.Empty`` keeps
working).
"""

from queue import Empty, Full

from flinq._compat import ShutDown
from flinq._core import LifoQueue, PriorityQueue, Queue, SimpleQueue

__version__ = "0.1.0"

__all__ = [
    "Empty",
    "Full",
    "LifoQueue",
    "PriorityQueue",
    "Queue",
    "ShutDown",
    "SimpleQueue",
    "__version__",
]
