"""Checks of the per-call arguments every durable backend takes (timeouts,
headers, TTLs, delays, a dead letter's error), so that each refuses the same things the same way.
Queue names and settings are checked in flinq.settings."""

from __future__ import annotations

from typing import Any

__all__ = ["check_delay", "check_error", "check_headers", "check_timeout", "check_ttl"]


def check_timeout(timeout: float | None) -> None:
    """ValueError for a timeout the in-memory queues refuse too."""
    if timeout is not None and not timeout >= 0:
        raise ValueError("'timeout' must be a non-negative number")


def check_headers(headers: Any) -> None:
    """TypeError unless headers is None or a dict of str to str."""
    if headers is not None and (
        not isinstance(headers, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise TypeError("headers must be a dict of str to str")


def check_ttl(ttl: Any) -> None:
    """ValueError unless ttl is None or a positive number of seconds."""
    if ttl is not None and not ttl > 0:
        raise ValueError("ttl must be a positive number of seconds")


def check_delay(delay: Any) -> None:
    """ValueError unless delay is a non-negative number of seconds."""
    if not delay >= 0:
        raise ValueError("delay must be a non-negative number of seconds")


def check_error(error: Any) -> None:
    """TypeError unless error is None or an exception (a dead letter's reason)."""
    if error is not None and not isinstance(error, BaseException):
        raise TypeError(f"error must be an exception or None, not {type(error).__name__}")
