"""Names that differ between the Python versions flinq supports."""

import queue

__all__ = ["ShutDown"]

if hasattr(queue, "ShutDown"):  # Python >= 3.13
    ShutDown = queue.ShutDown
else:

    class ShutDown(Exception):  # type: ignore[no-redef]
        """Raised by put() and get() on a queue that was shut down."""
