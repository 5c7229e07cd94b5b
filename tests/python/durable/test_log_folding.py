"""The pending log's folding: which operations of one commit reach LMDB."""

from flinq.lmdbstore.log import OP_CLEAR, OP_DEL, OP_PUT, OP_SET, coalesce

A = object()  # two queues' databases
B = object()


def _put(key: bytes, db: object = A) -> tuple:
    return (OP_PUT, db, key, b"v-" + key, None)


def _set(key: bytes, value: bytes, db: object = A) -> tuple:
    return (OP_SET, db, key, value, None)


def _del(key: bytes, db: object = A) -> tuple:
    return (OP_DEL, db, key, None, None)


def test_a_put_deleted_in_the_same_batch_writes_nothing() -> None:
    assert coalesce([_put(b"1"), _put(b"2"), _del(b"1")]) == [_put(b"2")]


def test_a_set_followed_by_its_delete_is_dropped_and_the_delete_kept() -> None:
    # The message is on disk from an earlier commit: the delete must reach it.
    assert coalesce([_set(b"1", b"a2"), _set(b"2", b"b2"), _del(b"1")]) == [
        _set(b"2", b"b2"),
        _del(b"1"),
    ]


def test_of_several_sets_of_one_key_only_the_last_is_written() -> None:
    batch = [_set(b"1", b"a2"), _set(b"2", b"b2"), _set(b"1", b"a3")]
    assert coalesce(batch) == [_set(b"2", b"b2"), _set(b"1", b"a3")]


def test_a_set_after_a_delete_of_its_key_stays() -> None:
    batch = [_set(b"1", b"a2"), _del(b"1"), _set(b"1", b"a3")]
    assert coalesce(batch) == [_del(b"1"), _set(b"1", b"a3")]


def test_a_dead_letter_move_keeps_the_delete_and_the_new_put() -> None:
    # A retired message is deleted from its queue and put, under a new key,
    # into the dead-letter queue: both reach the disk.
    batch = [_set(b"1", b"a2"), _del(b"1"), _put(b"9", B)]
    assert coalesce(batch) == [_del(b"1"), _put(b"9", B)]


def test_clearing_a_queue_ends_folding_across_it() -> None:
    clear = (OP_CLEAR, A, None, None, None)
    batch = [_put(b"1"), _set(b"2", b"b2"), clear, _del(b"1"), _del(b"2")]
    assert coalesce(batch) == [_put(b"1"), _set(b"2", b"b2"), clear, _del(b"1"), _del(b"2")]
