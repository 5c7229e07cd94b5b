"""The helpers flinq bench's trial modules and report share: trial checks,
batches split before timing, and the aligned tables. No test asserts a speed."""

from __future__ import annotations

import pytest

from flinq.bench.report import markdown_table, text_table
from flinq.bench.trials import BATCH, check, ignore, in_batches

HEADERS = ["workload", "flinq", "peer", "peer's", "advantage"]
ROWS = [
    ["enqueue", "12.3M", "queue.Queue", "1.2M", "10.2x"],
    ["x", "1", "a-very-long-peer-name", "", ""],
    ["", "", "p", "3", "-"],
]


def test_check_passes_silently_and_fails_with_what_was_expected() -> None:
    check(True, "never shown")
    with pytest.raises(RuntimeError, match=r"^benchmark trial check failed: every item taken$"):
        check(False, "every item taken")


def test_in_batches_splits_in_order_with_a_short_last_batch() -> None:
    items = list(range(2 * BATCH + 3))
    batches = in_batches(items)
    assert [len(b) for b in batches] == [BATCH, BATCH, 3]
    assert [item for batch in batches for item in batch] == items
    assert in_batches([b"a", b"b", b"c"], 2) == [[b"a", b"b"], [b"c"]]
    assert in_batches([], 5) == []


def test_ignore_takes_a_message_and_returns_nothing() -> None:
    assert ignore(b"message") is None


def test_text_table_pads_each_column_to_its_widest_cell() -> None:
    assert text_table(HEADERS, ROWS, right={1, 3, 4}).splitlines() == [
        "workload  flinq  peer                   peer's  advantage",
        "enqueue   12.3M  queue.Queue              1.2M      10.2x",
        "x             1  a-very-long-peer-name",
        "                 p                           3          -",
    ]
    assert text_table(HEADERS, ROWS, right={0}).splitlines()[1:3] == [
        " enqueue  12.3M  queue.Queue            1.2M    10.2x",
        "       x  1      a-very-long-peer-name",
    ]


def test_markdown_table_pads_and_marks_right_aligned_columns() -> None:
    assert markdown_table(HEADERS, ROWS, right={1, 3, 4}).splitlines() == [
        "| workload | flinq | peer                  | peer's | advantage |",
        "|----------|------:|-----------------------|-------:|----------:|",
        "| enqueue  | 12.3M | queue.Queue           |   1.2M |     10.2x |",
        "| x        |     1 | a-very-long-peer-name |        |           |",
        "|          |       | p                     |      3 |         - |",
    ]
    assert markdown_table(["a"], [], set()) == "| a |\n|---|"


@pytest.mark.parametrize("table", [text_table, markdown_table])
def test_a_row_of_the_wrong_length_is_a_value_error(table: object) -> None:
    with pytest.raises(ValueError):
        table(["a", "b"], [["1"]], set())  # type: ignore[operator]
