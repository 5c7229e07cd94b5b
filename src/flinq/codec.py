"""How durable messages are laid out in LMDB: keys, records, serializers.

Keys sort in delivery order under LMDB's byte order:
  FIFO queues     seq as 8 big-endian bytes;
  priority queues (priority + 2**63) as 8 big-endian bytes, then seq.

A record is a fixed header, the headers dict as JSON, then the body:
  tag (1 byte)   how the body is stored: bytes, bytearray, str or serialized
  attempts (4)   deliveries so far
  enqueued_at (8, float, Unix time)
  expires_at (8, float, Unix time; 0.0 for no TTL)
  headers_len (4)
"""

from __future__ import annotations

import json
import pickle
import struct
from typing import Any, Final, Protocol

from flinq.errors import StoreCorruptError

__all__ = [
    "ATTEMPTS_AT",
    "ATTEMPTS_STRUCT",
    "EXPIRES_AT_FIELD",
    "HAS_TTL",
    "NO_EXPIRY",
    "Record",
    "Serializer",
    "agree_serializer",
    "body_of",
    "decode_body",
    "decode_record",
    "encode_plain",
    "encode_record",
    "fifo_key",
    "key_priority",
    "key_seq",
    "may_expire",
    "priority_key",
    "resolve_serializer",
    "serializer_name",
    "stored_attempts",
    "untimed_body",
    "with_attempts",
    "with_headers",
    "without_expiry",
]

_HEADER = struct.Struct(">BIddI")
_SEQ = struct.Struct(">Q")
_PRIORITY_SEQ = struct.Struct(">QQ")
_PRIORITY_BIAS = 1 << 63

TAG_BYTES = 0
TAG_BYTEARRAY = 1
TAG_STR = 2
TAG_SERIALIZED = 3


class Serializer(Protocol):
    """Anything with dumps(obj) -> bytes and loads(bytes) -> obj."""

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class _Pickle:
    """pickle, highest protocol. Never load data from an untrusted writer."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class _Json:
    """JSON text, UTF-8."""

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class _Raw:
    """Refuses everything but bytes-like and str bodies (stored raw anyway)."""

    def dumps(self, obj: Any) -> bytes:
        raise TypeError(
            f"the 'raw' serializer stores bytes, bytearray, memoryview and str only, "
            f"not {type(obj).__name__}"
        )

    def loads(self, data: bytes) -> Any:
        raise TypeError("the 'raw' serializer cannot decode a serialized body")


_NAMED: dict[str, Serializer] = {"pickle": _Pickle(), "json": _Json(), "raw": _Raw()}


def resolve_serializer(spec: str | Serializer) -> Serializer:
    """The serializer named by spec, or spec itself if it has dumps/loads."""
    if isinstance(spec, str):
        try:
            return _NAMED[spec]
        except KeyError:
            raise ValueError(
                f"unknown serializer {spec!r}; use 'pickle', 'json', 'raw' "
                "or an object with dumps() and loads()"
            ) from None
    if callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None)):
        return spec
    raise TypeError("serializer must be 'pickle', 'json', 'raw' or have dumps() and loads()")


def serializer_name(serializer: Serializer) -> str:
    """The name a store records for serializer: "pickle", "json" or "raw",
    or module.qualname of a serializer's class."""
    for name, known in _NAMED.items():
        if serializer is known:
            return name
    kind = type(serializer)
    return f"{kind.__module__}.{kind.__qualname__}"


def is_named_serializer(name: str) -> bool:
    """True if name is one of the serializers resolve_serializer knows by name."""
    return name in _NAMED


def agree_serializer(
    stored: str | None, given: Serializer | None, where: str, readonly: bool
) -> Serializer:
    """The serializer a store at where must use: its own (stored, a
    serializer_name), which one given must be (ValueError otherwise). A
    store that records none yet (stored None) uses the one given, else
    pickle; its caller records that one. A store read only for inspection
    whose serializer is a class of the writer's leaves serialized bodies
    opaque ("raw")."""
    if stored is None:
        return given or resolve_serializer("pickle")
    if given is not None:
        if serializer_name(given) != stored:
            raise ValueError(
                f"{where} stores bodies with the {stored!r} serializer, "
                f"not {serializer_name(given)!r}: open it with serializer={stored!r}"
                + ("" if is_named_serializer(stored) else " (an instance of that class)")
            )
        return given
    if is_named_serializer(stored):
        return resolve_serializer(stored)
    if readonly:
        return resolve_serializer("raw")  # inspection: serialized bodies stay opaque
    raise ValueError(f"{where} stores bodies with the serializer {stored}: pass one")


fifo_key = _SEQ.pack  # fifo_key(seq) -> the key of message seq in a FIFO queue


def priority_key(priority: int, seq: int) -> bytes:
    """Key of message seq with priority in a priority queue."""
    return _PRIORITY_SEQ.pack(priority + _PRIORITY_BIAS, seq)


def key_seq(key: bytes) -> int:
    """The sequence number inside a key of either kind."""
    return int(_SEQ.unpack_from(key, len(key) - 8)[0])


def key_priority(key: bytes) -> int:
    """The priority inside a key (0 for a FIFO key)."""
    if len(key) == 8:
        return 0
    return int(_SEQ.unpack_from(key)[0]) - _PRIORITY_BIAS


def encode_body(body: Any, serializer: Serializer) -> tuple[int, bytes]:
    """(tag, bytes) for body; TypeError if it cannot be serialized."""
    kind = type(body)
    if kind is bytes:
        return TAG_BYTES, body
    if kind is str:
        return TAG_STR, body.encode("utf-8", "surrogatepass")
    if kind is bytearray:
        return TAG_BYTEARRAY, bytes(body)
    if kind is memoryview:
        return TAG_BYTES, body.tobytes()
    try:
        data = serializer.dumps(body)
    except TypeError:
        raise
    except Exception as exc:  # pickle.PicklingError, ValueError from json, ...
        raise TypeError(f"cannot serialize {kind.__name__}: {exc}") from exc
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"serializer.dumps() returned {type(data).__name__}, not bytes")
    return TAG_SERIALIZED, bytes(data)


def encode_record(
    body: Any,
    serializer: Serializer,
    *,
    attempts: int = 0,
    enqueued_at: float,
    expires_at: float = 0.0,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The stored form of one message."""
    tag, data = encode_body(body, serializer)
    head = b"" if not headers else json.dumps(headers, separators=(",", ":")).encode()
    return _HEADER.pack(tag, attempts, enqueued_at, expires_at, len(head)) + head + data


_pack_header = _HEADER.pack


def encode_plain(body: Any, serializer: Serializer, enqueued_at: float) -> bytes:
    """The stored form of a message with no headers and no TTL (the common case)."""
    if type(body) is bytes:
        return _pack_header(TAG_BYTES, 0, enqueued_at, 0.0, 0) + body
    tag, data = encode_body(body, serializer)
    return _pack_header(tag, 0, enqueued_at, 0.0, 0) + data


class Record:
    """A decoded record header; the body stays encoded until asked for."""

    __slots__ = ("attempts", "body_offset", "enqueued_at", "expires_at", "headers", "tag")

    def __init__(self, raw: bytes) -> None:
        tag, attempts, enqueued_at, expires_at, head_len = _HEADER.unpack_from(raw)
        self.tag: int = tag
        self.attempts: int = attempts
        self.enqueued_at: float = enqueued_at
        self.expires_at: float = expires_at
        start = _HEADER.size
        self.headers: dict[str, str] | None = (
            json.loads(raw[start : start + head_len]) if head_len else None
        )
        self.body_offset: int = start + head_len


def decode_record(raw: bytes) -> Record:
    """The header of a stored record; StoreCorruptError if it is damaged."""
    try:
        return Record(raw)
    except (struct.error, ValueError) as exc:
        raise StoreCorruptError(f"a stored message is damaged: {exc}") from exc


def decode_body(raw: bytes, record: Record, serializer: Serializer) -> Any:
    """The body of a stored record, as it was put; StoreCorruptError if it
    cannot be decoded."""
    data = raw[record.body_offset :]
    tag = record.tag
    if tag == TAG_BYTES:
        return data
    try:
        if tag == TAG_STR:
            return data.decode("utf-8", "surrogatepass")
        if tag == TAG_BYTEARRAY:
            return bytearray(data)
        if tag == TAG_SERIALIZED:
            return serializer.loads(data)
    except Exception as exc:  # whatever the serializer raises on bad input
        raise StoreCorruptError(f"cannot decode a stored message: {exc}") from exc
    raise StoreCorruptError(f"a stored message has an unknown type tag {tag}")


def body_of(raw: bytes, serializer: Serializer) -> Any:
    """The body of a stored record; StoreCorruptError if it cannot be
    decoded. Bytes without headers (the common case) need no header parsing."""
    if raw[0] == TAG_BYTES and raw[_HEADERS_LEN_AT:_BODY_AT] == b"\x00\x00\x00\x00":
        return raw[_BODY_AT:]
    return decode_body(raw, decode_record(raw), serializer)


#: untimed_body()'s answer for a record that has a TTL.
HAS_TTL: Final = object()


def untimed_body(raw: bytes, serializer: Serializer) -> Any:
    """The body of a stored record without a TTL, as body_of() gives it;
    HAS_TTL for one with a TTL (or too short to tell), whose expiry the
    caller checks first. Bytes with no TTL and no headers (the common case)
    take a single comparison."""
    if raw[_EXPIRES_AT:_BODY_AT] == _PLAIN_TAIL and raw[0] == TAG_BYTES:
        return raw[_BODY_AT:]
    if raw[EXPIRES_AT_FIELD] != NO_EXPIRY:
        return HAS_TTL
    return decode_body(raw, decode_record(raw), serializer)


def may_expire(raw: bytes) -> bool:
    """True if a stored record has a TTL (its expires_at is not 0.0)."""
    return raw[EXPIRES_AT_FIELD] != NO_EXPIRY


def stored_attempts(raw: bytes) -> int:
    """The attempts field of a stored record, without decoding the rest."""
    return int(ATTEMPTS_STRUCT.unpack_from(raw, ATTEMPTS_AT)[0])


def with_attempts(raw: bytes, attempts: int) -> bytes:
    """raw with its attempts field replaced."""
    return (
        raw[:ATTEMPTS_AT]
        + ATTEMPTS_STRUCT.pack(attempts)
        + raw[ATTEMPTS_AT + ATTEMPTS_STRUCT.size :]
    )


def with_headers(raw: bytes, extra: dict[str, str]) -> bytes:
    """raw with every header of extra set; StoreCorruptError if raw is damaged."""
    record = decode_record(raw)
    headers = {**(record.headers or {}), **extra}
    head = json.dumps(headers, separators=(",", ":")).encode()
    return (
        _HEADER.pack(record.tag, record.attempts, record.enqueued_at, record.expires_at, len(head))
        + head
        + raw[record.body_offset :]
    )


def without_expiry(raw: bytes) -> bytes:
    """raw with its expires_at field cleared."""
    return raw[:_EXPIRES_AT] + NO_EXPIRY + raw[_HEADERS_LEN_AT:]


HEADER_SIZE = _HEADER.size
_BODY_AT = HEADER_SIZE
_HEADERS_LEN_AT = HEADER_SIZE - 4
_EXPIRES_AT = 13
# expires_at 0.0 and headers_len 0: no TTL, no headers.
_PLAIN_TAIL = bytes(12)

# Fields a store's hot path reads or rewrites in place, without decoding
# the record (each a field of _HEADER: tag, attempts, enqueued_at,
# expires_at, headers_len).
#: The attempts field: ATTEMPTS_STRUCT.unpack_from(raw, ATTEMPTS_AT), and
#: raw[:ATTEMPTS_AT] + ATTEMPTS_STRUCT.pack(n) + raw[ATTEMPTS_AT + ATTEMPTS_STRUCT.size:].
ATTEMPTS_STRUCT: Final = struct.Struct(">I")
ATTEMPTS_AT: Final = 1
#: The expires_at field: raw[EXPIRES_AT_FIELD] is NO_EXPIRY for a record
#: without a TTL.
EXPIRES_AT_FIELD: Final = slice(_EXPIRES_AT, _HEADERS_LEN_AT)
NO_EXPIRY: Final = bytes(8)
