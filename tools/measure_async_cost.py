"""What the async face costs synchronous users: put() wall-clock time on a
queue with and without flinq.aio imported.

Each sample is a fresh process that puts 1M 64-byte items into a
flinq.Queue (then drains it with get_many, untimed), five times, and reports
its best pass in ns per put. "plain" imports flinq only; "aio" imports
flinq.aio and first has a coroutine wait on that very queue until a thread's
put wakes it (so the queue's watcher was installed, then removed). The two
kinds of process alternate, 7 of each; the medians are compared.

    python tools/measure_async_cost.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys

CHILD = r"""
import sys, time
import flinq
mode = sys.argv[1]
q = flinq.Queue()
if mode == "aio":
    import asyncio, threading
    from flinq.aio import async_queue

    async def wait_once():
        face = async_queue(q)
        threading.Timer(0.01, q.put, args=(b"wake",)).start()
        await face.get()

    asyncio.run(wait_once())
    assert q.watcher is None
items = [i.to_bytes(8, "little") * 8 for i in range(1_000_000)]
put = q.put
best = float("inf")
for _ in range(5):
    start = time.perf_counter()
    for item in items:
        put(item)
    best = min(best, time.perf_counter() - start)
    q.get_many(len(items))
print(best / len(items) * 1e9)
"""


def sample(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], check=True, capture_output=True, text=True
    )
    return float(out.stdout)


def main() -> None:
    figures: dict[str, list[float]] = {"plain": [], "aio": []}
    for _ in range(7):
        for mode in figures:
            figures[mode].append(sample(mode))
    plain = statistics.median(figures["plain"])
    aio = statistics.median(figures["aio"])
    for mode, values in figures.items():
        print(f"{mode:5}: median {statistics.median(values):.1f} ns/put  ({values})")
    print(f"aio / plain: {aio / plain:.3f}")


if __name__ == "__main__":
    main()
