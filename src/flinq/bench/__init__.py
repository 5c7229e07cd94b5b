"""flinq's benchmarks: workloads measured for flinq and its peers.

The workloads are defined once, in flinq.bench.workloads; ``flinq bench``
(flinq.bench.cli) and the pytest-benchmark suites in benchmarks/ both run
them. See docs/bench-results.md for measured figures.
"""
