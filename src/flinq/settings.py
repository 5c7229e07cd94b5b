"""A durable queue's settings: what every backend validates and stores.

Every backend checks a queue's name and settings here before it creates
anything, and keeps the settings with the queue, so that reopening a queue
without arguments gets them back.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any, Final

from flinq.errors import StoreCorruptError

__all__ = [
    "MAX_NAME_BYTES",
    "UNSET",
    "QueueSettings",
    "Unset",
    "check_name",
    "check_reopen",
    "decode_settings",
    "decode_stored_queues",
    "merge_settings",
]

#: The longest queue name, in UTF-8 bytes. LMDB keys (the name, and the
#: name of the queue's database) are at most 511 bytes; the limit leaves
#: room for a backend's prefix.
MAX_NAME_BYTES: Final = 400


class Unset:
    """The type of UNSET: an argument not given (unlike None, which clears a setting)."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: An argument of store.queue() that was not given: keep what is stored.
UNSET: Final = Unset()


def check_name(name: object, what: str = "a queue name") -> str:
    """name, if it can name a queue: a non-empty str without NUL or lone
    surrogates, at most MAX_NAME_BYTES in UTF-8. TypeError or ValueError
    otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{what} must not be empty")
    if "\x00" in name:
        raise ValueError(f"{what} must not contain NUL characters: {name!r}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text (no lone surrogates)") from None
    if size > MAX_NAME_BYTES:
        raise ValueError(f"{what} is {size} bytes in UTF-8; the limit is {MAX_NAME_BYTES}")
    return name


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")


@dataclass(frozen=True)
class QueueSettings:
    """What shapes a durable queue. priority is fixed when the queue is
    created; the others may change when it is reopened."""

    priority: bool = False
    maxsize: int = 0
    max_attempts: int | None = None
    visibility_timeout: float | None = None
    dead_letter: str | None = None

    def check(self, name: str) -> QueueSettings:
        """self, if every field is valid for queue name; TypeError or ValueError otherwise."""
        if not isinstance(self.priority, bool):
            raise TypeError("priority must be True or False")
        _check_int("maxsize", self.maxsize, -sys.maxsize - 1)
        if self.maxsize > sys.maxsize:
            raise ValueError(f"maxsize must be at most {sys.maxsize}")
        if self.max_attempts is not None:
            _check_int("max_attempts", self.max_attempts, 1)
        timeout = self.visibility_timeout
        if timeout is not None:
            if not isinstance(timeout, int | float) or isinstance(timeout, bool):
                raise TypeError("visibility_timeout must be a number of seconds or None")
            if not (timeout > 0 and math.isfinite(timeout)):
                raise ValueError("visibility_timeout must be a positive, finite number of seconds")
        if self.dead_letter is not None:
            check_name(self.dead_letter, "dead_letter")
            if self.dead_letter == name:
                raise ValueError("a queue cannot be its own dead-letter queue")
        return self

    def updated(self, **given: Any) -> QueueSettings:
        """A copy with the given fields that are not UNSET replaced."""
        return replace(self, **{k: v for k, v in given.items() if v is not UNSET})

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (only fields that differ from the default)."""
        default = QueueSettings()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name) or f.name == "priority"
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueSettings:
        """Settings from to_dict()'s output; unknown keys are ignored (a newer
        flinq may store more)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def checked_request(name: object, **given: Any) -> dict[str, Any]:
    """The settings a store.queue(name, ...) call gave (UNSET: not given),
    after checking the name and every value, so that a refused call creates
    nothing (TypeError/ValueError)."""
    check_name(name)
    QueueSettings().updated(**given).check(str(name))
    return given


def check_reopen(name: str, current: QueueSettings, given: dict[str, Any]) -> None:
    """ValueError if store.queue(name, **given) asks a queue open with
    current settings for other ones (arguments left out, UNSET, agree)."""
    changed = sorted(
        key for key, value in given.items() if value is not UNSET and getattr(current, key) != value
    )
    if changed:
        raise ValueError(
            f"queue {name!r} is open with other settings ({', '.join(changed)}): "
            "reopen the store to change them"
        )


def merge_settings(name: str, stored: QueueSettings | None, given: dict[str, Any]) -> QueueSettings:
    """The settings of queue name once store.queue(name, **given) has run:
    the stored ones (defaults for a new queue) with those given replaced,
    checked; ValueError for a change of priority, which a queue keeps."""
    settings = (stored or QueueSettings()).updated(**given).check(name)
    if stored is not None and settings.priority != stored.priority:
        raise ValueError(f"queue {name!r} was created with priority={stored.priority}")
    return settings


def decode_settings(raw: bytes, name: str, where: str) -> QueueSettings:
    """Queue name's settings as the store at where keeps them (to_dict()
    as JSON), checked; StoreCorruptError naming the queue and the store
    if they are damaged."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        return QueueSettings.from_dict(data).check(name)
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise StoreCorruptError(
            f"{where}: the settings of queue {name!r} are damaged: {exc}"
        ) from exc


def decode_stored_queues(
    stored: Iterable[tuple[bytes, bytes]], where: str
) -> dict[str, QueueSettings]:
    """Every queue's settings by name, in stored's order, from (name in
    UTF-8, settings) pairs as the store at where keeps them;
    StoreCorruptError if a name or settings are damaged."""
    out: dict[str, QueueSettings] = {}
    for key, raw in stored:
        try:
            name = key.decode()
        except UnicodeDecodeError as exc:
            raise StoreCorruptError(f"{where}: a queue's name is damaged: {key!r}") from exc
        out[name] = decode_settings(raw, name, where)
    return out
