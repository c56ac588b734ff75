"""The benchmark room: ``edgetl bench`` (config, timing loop, outputs), its table, the
environment stamp, contention and power sampling, and the latency-accuracy plots.

``from edgetl.bench import BenchConfig, bench`` is the Python API; the parts live in
``config``, ``timing``, ``run``, ``outputs``, ``table``, ``envstamp``, ``contention``, ``power``
and ``plots``."""

from edgetl.bench.config import BenchConfig
from edgetl.bench.run import bench

__all__ = ["BenchConfig", "bench"]
