"""How busy the machine was while we measured: CPU used by other processes and hypervisor steal.

Read from /proc/stat and this process's own CPU time, so a latency number can say whether
something else competed with it. Linux only; elsewhere every field is None.
"""

from __future__ import annotations

import os
from pathlib import Path

_STAT = Path("/proc/stat")


def _cpu_ticks(stat: Path = _STAT) -> list[int] | None:
    try:
        fields = stat.read_text().splitlines()[0].split()
    except OSError:
        return None
    return [int(v) for v in fields[1:]] if fields and fields[0] == "cpu" else None


class ContentionMeter:
    """``with ContentionMeter() as m: ...`` then ``m.result``: others' and steal CPU share in %
    of every CPU's time over the block (100% = all CPUs fully used by something else)."""

    def __init__(self, stat: Path = _STAT):
        self.stat = stat

    def __enter__(self) -> ContentionMeter:
        self._ticks, self._times = _cpu_ticks(self.stat), os.times()
        self.result: dict[str, float | None] = {"others_cpu_pct": None, "steal_pct": None}
        return self

    def __exit__(self, *exc) -> None:
        after = _cpu_ticks(self.stat)
        if self._ticks is None or after is None:
            return
        delta = [b - a for a, b in zip(self._ticks, after, strict=False)]
        total = sum(delta)
        if total <= 0:
            return
        hz = os.sysconf("SC_CLK_TCK")
        idle = delta[3] + (delta[4] if len(delta) > 4 else 0)
        steal = delta[7] if len(delta) > 7 else 0
        busy_s = (total - idle - steal) / hz
        now = os.times()
        ours_s = (now.user + now.system + now.children_user + now.children_system) - (
            self._times.user + self._times.system + self._times.children_user + self._times.children_system
        )
        # the ticks' own total is the CPU time that passed on all CPUs: no wall clock needed
        others = max(0.0, busy_s - ours_s) / (total / hz) * 100
        # tick granularity makes short blocks noisy; round to what the counters can resolve
        self.result = {"others_cpu_pct": round(others, 1), "steal_pct": round(steal / total * 100, 1)}
