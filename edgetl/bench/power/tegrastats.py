"""Parse one line of ``tegrastats`` output, in every format JetPack 4, 5 and 6 print:
rails as ``VDD_IN 5123mW/5123mW`` (JetPack 5/6), ``POM_5V_IN 3120/3120`` or ``VDD_IN 5297/5297``
(JetPack 4: milliwatts without a unit), ``GPU 463/463`` (AGX Xavier rail names), a third
``/max`` value (later releases); temperatures ``cpu@45.5C`` / ``CPU@45.5C`` (``-256C`` = sensor off);
``GR3D_FREQ 84%@[713]`` / ``0%@[0,0]`` / ``0%@76`` / ``0%``; ``EMC_FREQ 18%@3199``; ``CPU [9%@345,off]``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_RAIL = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "LFB"}
_TEMP = re.compile(r"(?<![\w])([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)?%?(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")  # whole-module input where the board measures it
SENSOR_OFF_C = -40.0  # tegrastats prints -256C for a sensor that is powered down
IGNORED_SENSORS = {"pmic"}  # PMIC@100C / @50C is a fixed placeholder on Xavier/Nano, not a reading


@dataclass
class TegraSample:
    """One tegrastats line: rails (mW, instantaneous), temperatures (C), clocks (MHz), loads (%)."""

    rails_mw: dict[str, float] = field(default_factory=dict)
    temps_c: dict[str, float] = field(default_factory=dict)
    gpu_mhz: float | None = None
    gpu_load_pct: float | None = None
    emc_mhz: float | None = None
    cpu_mhz: list[float] = field(default_factory=list)

    def total_w(self) -> tuple[float | None, str]:
        """(watts, what it covers): the module input rail where there is one, else the sum of
        the measured rails (AGX Orin, AGX Xavier have no single input rail in tegrastats)."""
        for name in TOTAL_RAILS:
            if name in self.rails_mw:
                return self.rails_mw[name] / 1e3, name
        rails = {k: v for k, v in self.rails_mw.items() if k != "NC"}
        if not rails:
            return None, "no power rails in tegrastats output (run it as root?)"
        return sum(rails.values()) / 1e3, "sum of " + "+".join(sorted(rails))


def parse_line(line: str) -> TegraSample | None:
    """A TegraSample, or None for a line that is not tegrastats output."""
    if "RAM " not in line and "GR3D" not in line:
        return None
    s = TegraSample()
    for name, now, _avg, _max in _RAIL.findall(line):
        if name not in _NOT_RAILS:
            s.rails_mw[name] = float(now)
    for name, value in _TEMP.findall(line):
        if float(value) > SENSOR_OFF_C and name.lower() not in IGNORED_SENSORS:
            s.temps_c[name.lower()] = float(value)
    if m := _GR3D.search(line):
        s.gpu_load_pct = float(m.group(1)) if m.group(1) else None
        if m.group(2):
            s.gpu_mhz = max(float(f) for f in m.group(2).split(",") if f)
    if m := _EMC.search(line):
        s.emc_mhz = float(m.group(2)) if m.group(2) else None
    if m := _CPU.search(line):
        s.cpu_mhz = [float(f) for f in re.findall(r"\d+%@(\d+)", m.group(1))]
    return s
