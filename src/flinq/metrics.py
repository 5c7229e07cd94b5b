"""Prometheus export of flinq's queue and store statistics.

Needs the optional extra: ``pip install "flinq[prometheus]"``.

``flinq.metrics.register(registry=None, *, queues=None)`` adds a collector to
a prometheus_client registry (the default one unless given) and returns it.
Each scrape reads ``stats()`` of:

* the in-memory queues it tracks, by name: those given as ``queues`` and
  those added later with ``collector.track(name, queue)``. It holds them
  weakly: a queue that is garbage collected drops out of the export;
* every open durable store of the process, of any backend (label
  ``store``: its path) and every durable queue opened through it, through
  flinq.protocols only. A store that is closed, or closes during a scrape,
  is left out.

Queue metrics carry the labels ``queue`` (its name) and ``store`` (the store's
path; empty for in-memory queues). A statistic a queue does not report, or
reports as None (e.g. a latency before any message was taken), has no sample.

metric                                  type     stats() key       meaning
--------------------------------------  -------  ----------------  -----------------------------
flinq_depth                             gauge    depth             messages ready
flinq_in_flight                         gauge    in_flight         reserved, not yet settled
flinq_maxsize                           gauge    maxsize           capacity; 0: unbounded
flinq_high_water                        gauge    high_water        highest depth reached
flinq_unfinished                        gauge    unfinished        task_done() calls owed
flinq_enqueued_total                    counter  enqueued          messages put
flinq_dequeued_total                    counter  dequeued          messages taken
flinq_acked_total                       counter  acked             messages acked
flinq_nacked_total                      counter  nacked            messages nacked
flinq_redelivered_total                 counter  redelivered       deliveries after the first
flinq_dead_lettered_total               counter  dead_lettered     moved to dead letters
flinq_expired_total                     counter  expired           dropped at their TTL
flinq_discarded_total                   counter  discarded         dropped by shutdown
flinq_lag_seconds                       gauge    lag               age of oldest ready message
flinq_latency_seconds{quantile="0.5"}   gauge    latency_p50       put-to-take latency, median
flinq_latency_seconds{quantile="0.99"}  gauge    latency_p99       put-to-take latency, 99th pct
flinq_enqueue_rate{window="1s"}         gauge    enqueue_rate_1s   puts/s over the window
flinq_enqueue_rate{window="10s"}        gauge    enqueue_rate_10s  (same)
flinq_enqueue_rate{window="60s"}        gauge    enqueue_rate_60s  (same)
flinq_dequeue_rate{window="1s"}         gauge    dequeue_rate_1s   takes/s over the window
flinq_dequeue_rate{window="10s"}        gauge    dequeue_rate_10s  (same)
flinq_dequeue_rate{window="60s"}        gauge    dequeue_rate_60s  (same)

Store metrics carry the label ``store``:

metric                                    type     store.stats() key  meaning
----------------------------------------  -------  -----------------  ----------------------------
flinq_store_pending                       gauge    pending            operations not committed yet
flinq_store_commits_total                 counter  commits            LMDB commits made
flinq_store_mean_batch                    gauge    mean_batch         mean operations per commit
flinq_store_last_commit_duration_seconds  gauge    last_commit_ms     duration of the last commit
flinq_store_disk_bytes                    gauge    bytes_on_disk      size of the data file
flinq_store_map_size_bytes                gauge    map_size           LMDB map size
flinq_store_page_size_bytes               gauge    page_size          LMDB page size
flinq_store_queues                        gauge    queues             durable queues open

Times are in seconds (last_commit_ms is divided by 1000). The latency
quantiles are gauges with a ``quantile`` label, not a summary: flinq computes
them over a recent window, with no matching _sum and _count.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "flinq.metrics needs prometheus_client: pip install 'flinq[prometheus]'"
    ) from exc

from flinq.backends import open_stores
from flinq.errors import StoreError
from flinq.protocols import DurableQueue, DurableStore

__all__ = ["QUEUE_METRICS", "STORE_METRICS", "FlinqCollector", "MetricSpec", "register"]


class _HasStats(Protocol):
    def stats(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class MetricSpec:
    """How one stats() key is exported: the metric's name (without the
    _total a counter gets), its type, help text, the labels the key adds
    to the object's own, and the factor that turns the value into the
    metric's unit."""

    key: str
    name: str
    kind: Literal["gauge", "counter"]
    doc: str
    labels: tuple[tuple[str, str], ...] = ()
    scale: float = 1.0


def _rates(direction: str, verb: str) -> tuple[MetricSpec, ...]:
    return tuple(
        MetricSpec(
            f"{direction}_rate_{window}",
            f"flinq_{direction}_rate",
            "gauge",
            f"Messages {verb} per second over the last window.",
            (("window", window),),
        )
        for window in ("1s", "10s", "60s")
    )


#: The queue statistics and the metrics they become (labels queue, store).
QUEUE_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("depth", "flinq_depth", "gauge", "Messages ready to be taken."),
    MetricSpec("in_flight", "flinq_in_flight", "gauge", "Messages reserved and not yet settled."),
    MetricSpec("maxsize", "flinq_maxsize", "gauge", "Queue capacity; 0 means unbounded."),
    MetricSpec("high_water", "flinq_high_water", "gauge", "Highest depth the queue has reached."),
    MetricSpec("unfinished", "flinq_unfinished", "gauge", "Items taken and not yet task_done()."),
    MetricSpec("enqueued", "flinq_enqueued", "counter", "Messages put."),
    MetricSpec("dequeued", "flinq_dequeued", "counter", "Messages taken."),
    MetricSpec("acked", "flinq_acked", "counter", "Messages acked."),
    MetricSpec("nacked", "flinq_nacked", "counter", "Messages nacked."),
    MetricSpec("redelivered", "flinq_redelivered", "counter", "Deliveries after the first."),
    MetricSpec(
        "dead_lettered", "flinq_dead_lettered", "counter", "Messages moved to dead letters."
    ),
    MetricSpec("expired", "flinq_expired", "counter", "Messages dropped at the end of their TTL."),
    MetricSpec(
        "discarded", "flinq_discarded", "counter", "Messages dropped by an immediate shutdown."
    ),
    MetricSpec("lag", "flinq_lag_seconds", "gauge", "Age of the oldest ready message."),
    MetricSpec(
        "latency_p50",
        "flinq_latency_seconds",
        "gauge",
        "Enqueue-to-dequeue latency over a recent window, by quantile.",
        (("quantile", "0.5"),),
    ),
    MetricSpec(
        "latency_p99",
        "flinq_latency_seconds",
        "gauge",
        "Enqueue-to-dequeue latency over a recent window, by quantile.",
        (("quantile", "0.99"),),
    ),
    *_rates("enqueue", "put"),
    *_rates("dequeue", "taken"),
)

#: The store statistics and the metrics they become (label store).
STORE_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("pending", "flinq_store_pending", "gauge", "Operations waiting to be committed."),
    MetricSpec("commits", "flinq_store_commits", "counter", "LMDB commits made."),
    MetricSpec("mean_batch", "flinq_store_mean_batch", "gauge", "Mean operations per commit."),
    MetricSpec(
        "last_commit_ms",
        "flinq_store_last_commit_duration_seconds",
        "gauge",
        "Duration of the last commit.",
        scale=0.001,
    ),
    MetricSpec("bytes_on_disk", "flinq_store_disk_bytes", "gauge", "Size of the data file."),
    MetricSpec("map_size", "flinq_store_map_size_bytes", "gauge", "LMDB map size."),
    MetricSpec("page_size", "flinq_store_page_size_bytes", "gauge", "LMDB page size."),
    MetricSpec("queues", "flinq_store_queues", "gauge", "Durable queues open in the store."),
)

_QUEUE_LABELS = ("queue", "store")
_STORE_LABELS = ("store",)


class _Families:
    """The metric families of one table, filled from stats() dicts."""

    def __init__(self, specs: Iterable[MetricSpec], base_labels: tuple[str, ...]) -> None:
        self._specs = tuple(specs)
        self.families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for spec in self._specs:
            if spec.name in self.families:
                continue
            labels = [*base_labels, *(name for name, _ in spec.labels)]
            family_type = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            self.families[spec.name] = family_type(spec.name, spec.doc, labels=labels)

    def add(self, stats: Mapping[str, Any], base_values: tuple[str, ...]) -> None:
        for spec in self._specs:
            value = stats.get(spec.key)
            if value is None or not isinstance(value, int | float):
                continue
            family = self.families[spec.name]
            labels = [*base_values, *(label for _, label in spec.labels)]
            family.add_metric(labels, float(value) * spec.scale)


def _snapshot_stores() -> list[DurableStore]:
    """The stores open now, of every backend."""
    return open_stores()


class FlinqCollector(Collector):
    """A prometheus_client collector for flinq's queues and stores.

    Exports the in-memory queues it tracks by name and every open store of
    the process with its durable queues, as described in flinq.metrics.
    """

    def __init__(self, queues: Mapping[str, _HasStats] | None = None) -> None:
        # Reentrant: a weakref callback may run (garbage collection) in a
        # thread that already holds it.
        self._lock = threading.RLock()
        self._tracked: dict[str, weakref.ref[_HasStats]] = {}
        for name, queue in (queues or {}).items():
            self.track(name, queue)

    def track(self, name: str, queue: _HasStats) -> None:
        """Export an in-memory queue under the label queue=name, for as long
        as it lives. Raises ValueError if another live queue has that name,
        and TypeError for a durable queue (exported with its store)."""
        if not isinstance(name, str) or not name:
            raise TypeError("a queue name must be a non-empty str")
        if isinstance(queue, DurableQueue):
            raise TypeError("durable queues are exported with their store: do not track them")
        if not callable(getattr(queue, "stats", None)):
            raise TypeError(f"{type(queue).__name__} has no stats() method")
        with self._lock:
            existing = self._tracked.get(name)
            current = existing() if existing is not None else None
            if current is queue:
                return
            if current is not None:
                raise ValueError(f"another queue is tracked as {name!r}")
            self._tracked[name] = weakref.ref(queue, self._forget_callback(name))

    def untrack(self, name: str) -> None:
        """Stop exporting the in-memory queue tracked as name (no error if none is)."""
        with self._lock:
            self._tracked.pop(name, None)

    def tracked(self) -> dict[str, _HasStats]:
        """The in-memory queues exported now, by name."""
        with self._lock:
            refs = list(self._tracked.items())
        out = {}
        for name, ref in refs:
            queue = ref()
            if queue is not None:
                out[name] = queue
        return out

    def _forget_callback(self, name: str) -> Callable[[weakref.ref[_HasStats]], None]:
        this = weakref.ref(self)

        def forget(ref: weakref.ref[_HasStats]) -> None:
            collector = this()
            if collector is None:
                return
            with collector._lock:
                if collector._tracked.get(name) is ref:
                    del collector._tracked[name]

        return forget

    def describe(self) -> Iterator[Metric]:
        """The metric families this collector exports, without samples."""
        yield from _Families(QUEUE_METRICS, _QUEUE_LABELS).families.values()
        yield from _Families(STORE_METRICS, _STORE_LABELS).families.values()

    def collect(self) -> Iterator[Metric]:
        """The current statistics of every tracked queue and open store."""
        queues = _Families(QUEUE_METRICS, _QUEUE_LABELS)
        stores = _Families(STORE_METRICS, _STORE_LABELS)
        for name, queue in sorted(self.tracked().items()):
            queues.add(queue.stats(), (name, ""))
        for store in sorted(_snapshot_stores(), key=lambda s: s.path):
            try:
                stores.add(store.stats(), (store.path,))
            except StoreError:  # closed, or closing
                continue
            for name, durable in sorted(store.open_queues().items()):
                try:
                    stats = durable.stats()
                except StoreError:
                    continue
                queues.add(stats, (name, store.path))
        yield from queues.families.values()
        yield from stores.families.values()


def register(
    registry: CollectorRegistry | None = None,
    *,
    queues: Mapping[str, _HasStats] | None = None,
) -> FlinqCollector:
    """Register a FlinqCollector with registry (prometheus_client.REGISTRY
    by default) and return it; queues names the in-memory queues to export
    (more can be added with its track()). Undo with
    registry.unregister(collector).

    Idempotent: while flinq's collector is registered there, another call
    returns it (tracking the queues given too). ValueError if the registry
    already holds flinq_* names that some other collector registered."""
    target = REGISTRY if registry is None else registry
    with _registering:
        collector = FlinqCollector(queues)
        try:
            target.register(collector)
        except ValueError:
            existing = _registered.get(target)
            if existing is None:
                raise ValueError(
                    "the registry already has flinq_* metrics that flinq.metrics.register() "
                    "did not add (another FlinqCollector?): unregister that one first"
                ) from None
            for name, queue in (queues or {}).items():
                existing.track(name, queue)
            return existing
        _registered[target] = collector
    return collector


# register()'s collector per registry, while the registry lives.
_registered: weakref.WeakKeyDictionary[CollectorRegistry, FlinqCollector] = (
    weakref.WeakKeyDictionary()
)
_registering = threading.Lock()
