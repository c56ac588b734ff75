"""Samplers that run for a whole bench and answer for any timed window inside it: average and
peak power, energy per call and per image, and (Jetson) whether clocks moved or it got hot."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

from edgetl.bench.power.sysfs import energy_delta_uj, ina3221_rails, rapl_zones
from edgetl.bench.power.tegrastats import parse_line

INTERVAL_S = 0.1  # tegrastats --interval 100; sysfs polling period
HOT_C = 85.0  # above this (tj/cpu/gpu) Jetson modules start to throttle


@dataclass
class Sample:
    t: float  # time.perf_counter() when taken (the bench's clock)
    watts: float
    rails_w: dict[str, float] = field(default_factory=dict)
    gpu_mhz: float | None = None
    emc_mhz: float | None = None
    cpu_mhz: float | None = None
    max_temp_c: float | None = None
    span_s: float = 0.0  # for counter-based sources: the interval this average covers


class Sampler:
    """Collects Samples on a thread from start() to stop(); ``window`` reads a slice of them."""

    source = "?"
    scope = "?"

    def __init__(self):
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name=f"power-{self.source}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._halt()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _halt(self) -> None:
        pass

    def _run(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"available": True, "source": self.source, "scope": self.scope, "interval_s": INTERVAL_S}

    def window(self, t0: float, t1: float, calls: int, batch: int) -> dict:
        """Power over [t0, t1] in which ``calls`` calls of ``batch`` images ran."""
        return summarize([s for s in list(self.samples) if t0 <= s.t <= t1], t1 - t0, calls, batch)


def summarize(samples: list[Sample], seconds: float, calls: int, batch: int) -> dict:
    """avg/peak W, energy per call and per image (avg W x window / calls), and what moved."""
    if not samples:
        return {
            "samples": 0,
            "note": f"no power sample fell in the {seconds:.2f} s window (one every {INTERVAL_S:g} s); "
            "time longer (--min-seconds)",
        }
    avg = sum(s.watts for s in samples) / len(samples)
    energy_j = avg * seconds
    out = {
        "samples": len(samples),
        "window_s": round(seconds, 4),
        "avg_w": round(avg, 4),
        "peak_w": round(max(s.watts for s in samples), 4),
        "energy_per_call_mj": round(energy_j / max(calls, 1) * 1e3, 4),
        "energy_per_image_mj": round(energy_j / max(calls * batch, 1) * 1e3, 4),
    }
    rails = sorted({k for s in samples for k in s.rails_w})
    if rails:
        out["rails_avg_w"] = {
            k: round(sum(s.rails_w.get(k, 0.0) for s in samples) / len(samples), 4) for k in rails
        }
    for key in ("gpu_mhz", "emc_mhz", "cpu_mhz"):
        values = [getattr(s, key) for s in samples if getattr(s, key) is not None]
        if values:
            out[key] = [min(values), max(values)]
    temps = [s.max_temp_c for s in samples if s.max_temp_c is not None]
    if temps:
        out["max_temp_c"] = max(temps)
    return out


def clock_warnings(where: str, power: dict) -> list[str]:
    """Plain-language flags: a clock that moved during the window, or a hot (throttling) board."""
    out = []
    moved = [
        f"{k[:-4].upper()} {lo:g}-{hi:g} MHz"
        for k in ("gpu_mhz", "emc_mhz", "cpu_mhz")
        if (v := power.get(k)) and (lo := v[0]) != (hi := v[1]) and hi > 0 and (hi - lo) / hi > 0.05
    ]
    if moved:
        out.append(
            f"{where}: clocks moved while timing ({', '.join(moved)}): DVFS or throttling; pin them "
            "(`sudo jetson_clocks`) and rerun for numbers that repeat."
        )
    if (t := power.get("max_temp_c")) is not None and t >= HOT_C:
        out.append(f"{where}: the board reached {t:.1f} C while timing and may have throttled.")
    return out


class TegrastatsSampler(Sampler):
    """``tegrastats --interval 100``, one line per sample, parsed as it arrives."""

    source = "tegrastats"

    def __init__(self, exe: str):
        super().__init__()
        self.exe = exe
        self.proc: subprocess.Popen | None = None
        self.scope = "unknown (no sample yet)"

    def _run(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--interval", str(int(INTERVAL_S * 1000))],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t = time.perf_counter()
            s = parse_line(line)
            if s is None:
                continue
            watts, self.scope = s.total_w()
            if watts is None:
                continue
            self.samples.append(
                Sample(
                    t,
                    watts,
                    {k: v / 1e3 for k, v in s.rails_mw.items() if k != "NC"},
                    s.gpu_mhz,
                    s.emc_mhz,
                    max(s.cpu_mhz) if s.cpu_mhz else None,
                    max(s.temps_c.values()) if s.temps_c else None,
                )
            )
            if self._stop.is_set():
                break

    def _halt(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RaplSampler(Sampler):
    """Intel RAPL: power = energy counter delta / time between polls (wraparound handled)."""

    source = "rapl"

    def __init__(self, zones):
        super().__init__()
        self.zones = zones
        self.scope = "+".join(z.name for z in zones) + " (CPU package energy, not the whole machine)"
        if [z.name for z in zones] == ["psys"]:
            self.scope = "psys (whole platform, as the firmware measures it)"

    def _run(self) -> None:
        last_t, last = time.perf_counter(), [z.read_uj() for z in self.zones]
        while not self._stop.wait(INTERVAL_S):
            try:
                t, now = time.perf_counter(), [z.read_uj() for z in self.zones]
            except (OSError, ValueError):  # a torn read: skip this poll, the next delta covers it
                continue
            uj = sum(
                energy_delta_uj(a, b, z.max_range_uj) for a, b, z in zip(last, now, self.zones, strict=True)
            )
            self.samples.append(Sample((t + last_t) / 2, uj / 1e6 / (t - last_t), span_s=t - last_t))
            last_t, last = t, now


class InaSampler(Sampler):
    """Jetson INA3221 rails in sysfs (mV x mA), polled."""

    source = "ina3221"

    def __init__(self, rails):
        super().__init__()
        self.rails = rails
        names = [r.name for r in rails]
        total = next((n for n in ("VDD_IN", "POM_5V_IN") if n in names), None)
        self.total = total
        self.scope = total or "sum of " + "+".join(names)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            t = time.perf_counter()
            try:
                rails = {r.name: r.read_mw() / 1e3 for r in self.rails}
            except (OSError, ValueError):
                continue
            watts = rails[self.total] if self.total else sum(rails.values())
            self.samples.append(Sample(t, watts, rails))


@dataclass
class Unavailable:
    reason: str

    def describe(self) -> dict:
        return {"available": False, "reason": self.reason}


def open_sampler() -> Sampler | Unavailable:
    """The best power source here: tegrastats, INA3221 sysfs, Intel RAPL; else why there is none.
    EDGETL_POWER=off turns sampling off."""
    if os.environ.get("EDGETL_POWER", "").lower() in ("off", "0", "no"):
        return Unavailable("turned off with EDGETL_POWER=off")
    if exe := shutil.which("tegrastats"):
        return TegrastatsSampler(exe)
    if rails := ina3221_rails():
        return InaSampler(rails)
    zones, reason = rapl_zones()
    if zones:
        return RaplSampler(zones)
    return Unavailable(
        f"no power sensor readable here: no tegrastats on PATH, no INA3221 rails in sysfs, and {reason}"
    )
