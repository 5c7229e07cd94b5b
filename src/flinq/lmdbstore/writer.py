"""A store's writer thread: commits the pending log in batches and runs the
scheduler's calls.

It sleeps until the earliest of: a kick (batch_size operations pending, a
producer waiting for room, close), flush_interval after it first saw an
operation pending, the scheduler's next deadline, and the status file's
next update (due STATUS_INTERVAL after the last, once a round changed
something). With nothing pending and nothing scheduled it sleeps until
woken: an idle store costs no CPU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flinq.lmdbstore.log import PendingLog
from flinq.lmdbstore.scheduler import Scheduler
from flinq.lmdbstore.status import STATUS_INTERVAL

__all__ = ["Writer"]

_log = logging.getLogger("flinq")


class Writer:
    """The thread that commits a batch-mode store's log and runs its timers.

    publish_status() writes the status file; on_failure(exc) runs if the
    thread dies of an error (and reports it to every waiting caller)."""

    def __init__(
        self,
        name: str,
        log: PendingLog,
        scheduler: Scheduler,
        flush_interval: float,
        publish_status: Callable[[], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.log = log
        self.scheduler = scheduler
        self.flush_interval = flush_interval
        self.publish_status = publish_status
        self._on_failure = on_failure
        self.stopping = False
        # When the status was last published; the one at open does not
        # count, so that the first change after it is published at once.
        self._status_at = -STATUS_INTERVAL
        self._status_due: float | None = 0.0  # the first round publishes
        self._status_opened = False
        self._commits_seen = 0  # commits by any thread: flush() and sync puts commit too
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None) -> bool:
        """Ask the thread to commit what is pending and end; True once it has."""
        log = self.log
        with log.cv:
            self.stopping = True
            log.cv.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            _log.critical("flinq: the writer thread failed", exc_info=exc)
            self._on_failure(exc)

    def _wait(self) -> bool:
        """Sleep until there is work (see the module's docstring); True if stopping."""
        log = self.log
        scheduler = self.scheduler
        pending_since: float | None = None
        with log.cv:
            while not (log.kicked or self.stopping):
                now = time.monotonic()
                wake_at = scheduler.next_deadline()
                status_due = self._status_due
                if status_due is not None:
                    wake_at = status_due if wake_at is None else min(wake_at, status_due)
                if log.ops and pending_since is None:
                    pending_since = now
                if pending_since is not None:  # a round is due even if another thread committed
                    flush_at = pending_since + self.flush_interval
                    wake_at = flush_at if wake_at is None else min(wake_at, flush_at)
                if wake_at is not None and wake_at <= now:
                    break
                log.cv.wait(None if wake_at is None else wake_at - now)
                # Woken: there is work, though another thread may have
                # committed it before this one ran; look within an interval.
                if pending_since is None:
                    pending_since = time.monotonic()
            log.kicked = False
            return self.stopping

    def _loop(self) -> None:
        log = self.log
        backoff = 0.0
        while True:
            stopping = self._wait()
            # Sync producers may be committing one after another; the writer
            # then leaves the commits to them (their leader takes the whole
            # log), except for the last commit at close.
            if log.ops:
                log.commit_all(wait=stopping)
            now = time.monotonic()
            changed = self.scheduler.run_due(now) > 0 or log.commits != self._commits_seen
            self._commits_seen = log.commits
            if changed and self._status_due is None:
                self._status_due = max(now, self._status_at + STATUS_INTERVAL)
            if self._status_due is not None and self._status_due <= now:
                self._status_due = None
                if self._status_opened:
                    self._status_at = now
                self._status_opened = True
                self.publish_status()
            if log.write_error is not None and log.ops:
                if stopping:
                    return  # close() reports the error
                backoff = min(max(backoff * 2, 0.05), 1.0)
                time.sleep(backoff)
                continue
            backoff = 0.0
            if stopping and not log.ops:
                return
