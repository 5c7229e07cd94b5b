"""The stored record format's body readers (flinq.codec), without a store."""

from __future__ import annotations

import pytest

from flinq.codec import (
    HAS_TTL,
    body_of,
    encode_plain,
    encode_record,
    resolve_serializer,
    untimed_body,
)
from flinq.errors import StoreCorruptError

PICKLE = resolve_serializer("pickle")


@pytest.mark.parametrize("body", [b"", b"x" * 64, "text", bytearray(b"ab"), {"k": [1, 2]}])
def test_untimed_body_reads_a_record_without_a_ttl(body: object) -> None:
    plain = encode_plain(body, PICKLE, 1.5)
    assert untimed_body(plain, PICKLE) == body == body_of(plain, PICKLE)
    with_headers = encode_record(body, PICKLE, enqueued_at=1.5, expires_at=0.0, headers={"a": "b"})
    assert untimed_body(with_headers, PICKLE) == body


def test_untimed_body_leaves_a_record_with_a_ttl_to_the_caller() -> None:
    timed = encode_record(b"x", PICKLE, enqueued_at=1.5, expires_at=9.0, headers=None)
    assert untimed_body(timed, PICKLE) is HAS_TTL
    assert untimed_body(b"\x00" * 5, PICKLE) is HAS_TTL  # too short to tell


def test_untimed_body_refuses_a_damaged_record() -> None:
    plain = encode_plain(b"x", PICKLE, 1.5)
    with pytest.raises(StoreCorruptError):
        untimed_body(b"\x09" + plain[1:], PICKLE)  # unknown type tag
    with pytest.raises(StoreCorruptError):
        untimed_body(plain[:21] + b"\x00\x00\x00\x10" + b"{", PICKLE)  # headers cut short
