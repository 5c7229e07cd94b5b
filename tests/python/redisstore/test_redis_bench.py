"""flinq bench's Redis rows: measured next to raw redis-py on a server
given by --redis-url, and an unreachable --redis-url is an error; each
Redis trial's own check (the Redis list peers' too) passes after run() and
fails without it. No test asserts a speed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redishelpers import shared_server

from flinq.bench.env import Env
from flinq.bench.model import Trial
from flinq.bench.redis_trials import (
    REDIS_BATCH,
    FlinqConsume,
    FlinqPut,
    FlinqPutBatch,
    FlinqReserveAck,
    RawConsume,
    RawReadAck,
    RawXadd,
    RawXaddBatch,
)
from flinq.bench.trials import BATCH, RedisPop, RedisPush, RedisReserveAck

pytest.importorskip("redis", reason="redis-py is not installed (pip install 'flinq[redis]')")

# Each Redis trial, with the batches it splits its payloads into: the Redis
# rows' trials and the Redis list peers of the durable rows.
REDIS_TRIALS: list[tuple[type[Trial], int]] = [
    (FlinqPutBatch, REDIS_BATCH),
    (FlinqPut, REDIS_BATCH),
    (FlinqReserveAck, REDIS_BATCH),
    (FlinqConsume, REDIS_BATCH),
    (RawXaddBatch, REDIS_BATCH),
    (RawXadd, REDIS_BATCH),
    (RawReadAck, REDIS_BATCH),
    (RawConsume, REDIS_BATCH),
    (RedisPush, BATCH),
    (RedisPop, BATCH),
    (RedisReserveAck, BATCH),
]


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flinq", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_redis_rows_sit_next_to_raw_redis_py(tmp_path):
    url = shared_server().url
    report_path = tmp_path / "r.json"
    only = "redis-put-batch,redis-put,redis-reserve-ack,redis-consume"
    done = _bench(
        "--only", only, "-n", "5000", "--repeat", "3", "--redis-url", url,
        "--json", str(report_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    rows = {w["name"]: {r["name"]: r for r in w["results"]} for w in report["workloads"]}
    assert sorted(rows) == sorted(only.split(","))
    for name, results in rows.items():
        extra = {"RQ"} if name == "redis-consume" else set()
        assert set(results) == {"flinq (Redis)", "redis-py (raw)", *extra}, name
        for contender, result in results.items():
            if contender == "RQ" and importlib.util.find_spec("rq") is None:
                assert result["status"] == "skipped", result
            else:
                assert result["status"] == "ok", result


def test_an_unreachable_redis_url_exits_1_with_the_reason(tmp_path):
    done = _bench(
        "--only", "redis-put", "--redis-url", "redis://:hidden@127.0.0.1:1/0", cwd=tmp_path
    )
    assert done.returncode == 1
    assert "cannot reach --redis-url redis://:***@127.0.0.1:1/0" in done.stderr
    assert "hidden" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("trial_class", "batch"), REDIS_TRIALS, ids=[c.__name__ for c, _ in REDIS_TRIALS]
)
def test_each_redis_trial_checks_its_own_work(trial_class: Any, batch: int) -> None:
    n = 2 * batch + 7
    with Env(redis_url=shared_server().url) as env:
        assert env.redis_unavailable() is None
        trial = trial_class(n, env)
        # Split before run() so that no trial slices inside the timed part.
        assert [len(chunk) for chunk in trial.batches] == [batch, batch, 7]
        assert [p for batch in trial.batches for p in batch] == env.payloads(n)
        trial.run()
        trial.close()

        idle = trial_class(n, env)  # prepared, never run: its check must fail
        with pytest.raises(RuntimeError, match=r"^benchmark trial check failed: "):
            idle.close()
