"""WakeUp, the Future-like object a waiting coroutine awaits."""

from __future__ import annotations

import asyncio

import pytest

from flinq.aio._wakeup import WakeUp


def test_resume_steps_the_waiting_task_within_the_current_handle():
    async def main():
        loop = asyncio.get_running_loop()
        wake = WakeUp(loop)
        steps = []

        async def waiter():
            await wake
            steps.append("resumed")

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        assert not wake.done()

        def handle():
            wake.resume()
            steps.append("after resume, same handle")

        loop.call_soon(handle)
        await task
        return steps, wake.done(), wake.cancelled(), wake.result()

    assert asyncio.run(main()) == (["resumed", "after resume, same handle"], True, False, None)


def test_resume_soon_steps_the_task_next_iteration():
    async def main():
        wake = WakeUp(asyncio.get_running_loop())
        waiter = asyncio.create_task(_await(wake))
        await asyncio.sleep(0)
        wake.resume_soon()
        assert not waiter.done()
        await waiter

    asyncio.run(main())


async def _await(wake):
    await wake


def test_cancelling_the_task_cancels_the_wakeup_with_its_message():
    async def main():
        wake = WakeUp(asyncio.get_running_loop())
        waiter = asyncio.create_task(_await(wake))
        await asyncio.sleep(0)
        waiter.cancel("stop")
        with pytest.raises(asyncio.CancelledError, match="stop"):
            await waiter
        assert wake.cancelled() and not wake.cancel()
        with pytest.raises(asyncio.CancelledError):
            wake.result()

    asyncio.run(main())


def test_pending_result_and_callbacks():
    loop = asyncio.new_event_loop()
    try:
        wake = WakeUp(loop)
        with pytest.raises(asyncio.InvalidStateError):
            wake.result()
        seen = []
        wake.add_done_callback(seen.append)
        wake.add_done_callback(print)
        assert wake.remove_done_callback(print) == 1
        wake.resume()
        assert seen == [wake] and wake.exception() is None
        assert asyncio.isfuture(wake) and wake.get_loop() is loop
    finally:
        loop.close()
