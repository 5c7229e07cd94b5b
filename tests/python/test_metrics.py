"""flinq.metrics: the Prometheus export, checked by scraping the text exposition."""

from __future__ import annotations

import gc

import pytest

# CI installs prometheus_client with the test extra; the wheel builds' test
# environments (cibuildwheel test-requires) do not have it.
pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import flinq
from flinq import metrics

QUEUE_TYPES = [flinq.Queue, flinq.LifoQueue, flinq.PriorityQueue, flinq.SimpleQueue]
FAST = {"flush_interval": 0.002}
TIMED = {"lag", "latency_p50", "latency_p99"} | {
    f"{kind}_rate_{window}" for kind in ("enqueue", "dequeue") for window in ("1s", "10s", "60s")
}


def scrape(registry):
    """{(sample name, sorted labels): value} and {family name: type} from the text exposition."""
    text = generate_latest(registry).decode()
    samples = {}
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def series_of(samples, **labels):
    """The samples whose labels include labels."""
    want = set(labels.items())
    return {k: v for k, v in samples.items() if want <= set(k[1])}


def sample_name(spec):
    return spec.name + "_total" if spec.kind == "counter" else spec.name


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def stores():
    """open(path) -> Store, every store closed at teardown."""
    opened = []

    def open_(path):
        store = flinq.open(path, **FAST)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def test_tables_name_each_stat_once():
    for table in (metrics.QUEUE_METRICS, metrics.STORE_METRICS):
        keys = [spec.key for spec in table]
        assert len(keys) == len(set(keys))
        for spec in table:
            assert spec.name.startswith("flinq_")
            assert not spec.name.endswith("_total")
    assert all(s.name.startswith("flinq_store_") for s in metrics.STORE_METRICS)


def test_every_stat_has_a_metric(tmp_path, stores):
    """A stats() key with no row in the table would silently not be exported."""
    mapped = {spec.key for spec in metrics.QUEUE_METRICS}
    for cls in QUEUE_TYPES:
        assert set(cls().stats()) <= mapped, cls
    store = stores(tmp_path / "s")
    assert set(store.queue("q").stats()) <= mapped
    assert set(store.queue("p", priority=True).stats()) <= mapped
    assert set(store.stats()) <= {spec.key for spec in metrics.STORE_METRICS}


@pytest.mark.parametrize("cls", QUEUE_TYPES, ids=lambda c: c.__name__)
def test_in_memory_queue(registry, cls):
    q = cls()
    for i in range(5):
        q.put(i)
    q.get()
    q.get()
    metrics.register(registry, queues={"jobs": q})
    samples, types = scrape(registry)
    labels = {"queue": "jobs", "store": ""}

    assert value(samples, "flinq_enqueued_total", **labels) == 5
    assert value(samples, "flinq_dequeued_total", **labels) == 2
    assert value(samples, "flinq_depth", **labels) == 3
    assert value(samples, "flinq_high_water", **labels) == 5
    assert types["flinq_enqueued"] == "counter"
    assert types["flinq_depth"] == "gauge"
    # Every numeric stat is exported, with the value stats() reports.
    stats = q.stats()
    for spec in metrics.QUEUE_METRICS:
        got = value(samples, sample_name(spec), **labels, **dict(spec.labels))
        if stats.get(spec.key) is None:
            assert got is None, spec
            continue
        assert got is not None and got >= 0, spec
        if spec.key not in TIMED:  # these move with the clock between two reads
            assert got == stats[spec.key] * spec.scale, spec


def test_queues_can_be_tracked_after_register(registry):
    collector = metrics.register(registry)
    assert series_of(scrape(registry)[0], store="") == {}
    a, b = flinq.Queue(maxsize=10), flinq.SimpleQueue()
    collector.track("a", a)
    collector.track("b", b)
    a.put("x")
    samples, _ = scrape(registry)
    assert value(samples, "flinq_depth", queue="a", store="") == 1
    assert value(samples, "flinq_maxsize", queue="a", store="") == 10
    assert value(samples, "flinq_unfinished", queue="a", store="") == 1
    assert value(samples, "flinq_depth", queue="b", store="") == 0
    assert collector.tracked() == {"a": a, "b": b}


def test_untracked_and_collected_queues_disappear(registry):
    keep, drop = flinq.Queue(), flinq.Queue()
    collector = metrics.register(
        registry, queues={"keep": keep, "drop": drop, "gone": flinq.Queue()}
    )
    gc.collect()  # the unnamed "gone" queue had no other reference
    samples, _ = scrape(registry)
    assert series_of(samples, queue="gone") == {}
    assert series_of(samples, queue="drop")

    collector.untrack("keep")
    collector.untrack("never-tracked")
    del drop
    gc.collect()
    samples, _ = scrape(registry)
    assert series_of(samples, queue="keep") == {}
    assert series_of(samples, queue="drop") == {}
    assert collector.tracked() == {}
    # The name is free again once its queue is gone.
    collector.track("drop", keep)
    assert series_of(scrape(registry)[0], queue="drop")


def test_track_refuses_clashes_and_non_queues(registry, tmp_path, stores):
    collector = metrics.register(registry)
    q = flinq.Queue()
    collector.track("q", q)
    collector.track("q", q)  # the same queue again: no change
    with pytest.raises(ValueError):
        collector.track("q", flinq.Queue())
    with pytest.raises(TypeError):
        collector.track("durable", stores(tmp_path / "s").queue("d"))
    with pytest.raises(TypeError):
        collector.track("plain", object())
    with pytest.raises(TypeError):
        collector.track("", flinq.Queue())
    assert collector.tracked() == {"q": q}


def test_stats_missing_or_none_have_no_sample(registry):
    """Keys a queue does not report, or reports as None, are skipped; known keys map by name."""

    class Partial:
        def stats(self):
            return {
                "depth": 2,
                "lag": 1.5,
                "latency_p50": None,
                "latency_p99": 0.25,
                "enqueue_rate_10s": 40.0,
                "acked": 7,
                "not_a_flinq_stat": 1,
            }

    partial = Partial()
    metrics.register(registry, queues={"p": partial})
    samples, _ = scrape(registry)
    labels = {"queue": "p", "store": ""}
    assert series_of(samples, **labels) == {
        ("flinq_depth", (("queue", "p"), ("store", ""))): 2.0,
        ("flinq_lag_seconds", (("queue", "p"), ("store", ""))): 1.5,
        ("flinq_latency_seconds", (("quantile", "0.99"), ("queue", "p"), ("store", ""))): 0.25,
        ("flinq_enqueue_rate", (("queue", "p"), ("store", ""), ("window", "10s"))): 40.0,
        ("flinq_acked_total", (("queue", "p"), ("store", ""))): 7.0,
    }


def test_durable_queues_and_store(registry, tmp_path, stores):
    store = stores(tmp_path / "s")
    jobs = store.queue("jobs", maxsize=100)
    other = store.queue("other", priority=True)
    for i in range(4):
        jobs.put(f"job{i}")
    other.put(b"x", priority=3)
    jobs.get()
    done = jobs.reserve()
    done.ack()
    held = jobs.reserve()  # still in flight at the scrape
    store.flush()

    metrics.register(registry)
    samples, types = scrape(registry)
    path = store.path
    labels = {"queue": "jobs", "store": path}
    assert value(samples, "flinq_enqueued_total", **labels) == 4
    assert value(samples, "flinq_dequeued_total", **labels) == 3
    assert value(samples, "flinq_depth", **labels) == 1
    assert value(samples, "flinq_in_flight", **labels) == 1
    assert value(samples, "flinq_acked_total", **labels) == 1
    assert value(samples, "flinq_maxsize", **labels) == 100
    assert value(samples, "flinq_depth", queue="other", store=path) == 1
    assert value(samples, "flinq_enqueued_total", queue="other", store=path) == 1

    stats = store.stats()
    assert value(samples, "flinq_store_queues", store=path) == 2
    assert value(samples, "flinq_store_pending", store=path) == 0
    assert value(samples, "flinq_store_commits_total", store=path) >= 1
    assert value(samples, "flinq_store_mean_batch", store=path) > 0
    assert value(samples, "flinq_store_last_commit_duration_seconds", store=path) >= 0
    assert value(samples, "flinq_store_map_size_bytes", store=path) == stats["map_size"]
    assert value(samples, "flinq_store_page_size_bytes", store=path) == stats["page_size"]
    assert value(samples, "flinq_store_disk_bytes", store=path) > 0
    assert types["flinq_store_commits"] == "counter"
    # Store-level metrics carry only the store label.
    assert all(
        dict(labels_) == {"store": path}
        for (name, labels_), _ in series_of(samples, store=path).items()
        if name.startswith("flinq_store_")
    )
    held.ack()


def test_closed_store_is_skipped(registry, tmp_path, stores, monkeypatch):
    alive = stores(tmp_path / "alive")
    alive.queue("a").put(1)
    closed = stores(tmp_path / "closed")
    closed.queue("c").put(1)
    closed.close()
    metrics.register(registry)

    samples, _ = scrape(registry)
    assert series_of(samples, store=closed.path) == {}
    assert value(samples, "flinq_depth", queue="a", store=alive.path) == 1

    # A store that closes between the scrape's look at the open stores and its stats().
    monkeypatch.setattr(metrics, "_snapshot_stores", lambda: [closed, alive])
    samples, _ = scrape(registry)
    assert series_of(samples, store=closed.path) == {}
    assert value(samples, "flinq_depth", queue="a", store=alive.path) == 1


def test_register_twice_is_idempotent_and_unregister_undoes_it(registry):
    q, r = flinq.Queue(), flinq.Queue()
    q.put(1)
    collector = metrics.register(registry, queues={"q": q})
    again = metrics.register(registry, queues={"r": r})
    assert again is collector
    assert set(collector.tracked()) == {"q", "r"}
    samples, _ = scrape(registry)
    assert value(samples, "flinq_depth", queue="q", store="") == 1
    registry.unregister(collector)
    samples, _ = scrape(registry)
    assert not any(name.startswith("flinq_") for name, _ in samples)
    fresh = metrics.register(registry)  # after unregister: a new one
    assert fresh is not collector
    registry.unregister(fresh)


def test_register_over_a_foreign_flinq_collector_is_one_clear_error(registry):
    registry.register(metrics.FlinqCollector())
    with pytest.raises(ValueError, match="unregister that one first") as info:
        metrics.register(registry)
    assert len(str(info.value)) < 200


def test_default_registry():
    from prometheus_client import REGISTRY

    q = flinq.Queue()
    q.put(1)
    collector = metrics.register(queues={"default-q": q})
    try:
        samples, _ = scrape(REGISTRY)
        assert value(samples, "flinq_depth", queue="default-q", store="") == 1
    finally:
        REGISTRY.unregister(collector)
