"""The exceptions of the async face: each is both the stdlib queue module's
and asyncio's, so ``except queue.Empty`` and ``except asyncio.QueueEmpty``
both keep working."""

import asyncio
import queue
import sys

from flinq._compat import ShutDown

__all__ = ["NOT_YET", "QueueEmpty", "QueueFull", "QueueShutDown"]

# What an attempt raises to say "not yet: wait, then try again".
NOT_YET = (queue.Empty, queue.Full)


class QueueEmpty(queue.Empty, asyncio.QueueEmpty):
    """Raised by get_nowait() and friends when nothing is queued."""


class QueueFull(queue.Full, asyncio.QueueFull):
    """Raised by put_nowait() and friends when a bounded queue has no room."""


if sys.version_info >= (3, 13):

    class QueueShutDown(ShutDown, asyncio.QueueShutDown):
        """Raised by put and get on a queue that was shut down."""

else:

    class QueueShutDown(ShutDown):  # type: ignore[misc]  # ShutDown is Any to mypy on 3.11
        """Raised by put and get on a queue that was shut down."""
