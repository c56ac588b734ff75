"""Power read from sysfs: Intel RAPL energy counters (with wraparound) and the INA3221 rail
monitors of Jetson modules (hwmon: in*_label, in*_input mV, curr*_input mA)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RAPL_ROOT = Path("/sys/class/powercap")
HWMON_ROOTS = (Path("/sys/bus/i2c/drivers/ina3221"), Path("/sys/class/hwmon"))


@dataclass
class RaplZone:
    """One top-level RAPL zone (a CPU package or psys); its subzones are inside it, not added."""

    name: str
    energy: Path
    max_range_uj: int

    def read_uj(self) -> int:
        return int(self.energy.read_text().strip())


def rapl_zones(root: Path = RAPL_ROOT) -> tuple[list[RaplZone], str | None]:
    """Readable top-level zones, or the reason there are none. psys (whole platform) is used
    alone where present, else the sum of the packages."""
    zones, reason = [], None
    for d in sorted(root.glob("intel-rapl:*")):
        if d.name.count(":") != 1:  # intel-rapl:0:1 is a subzone (core/uncore/dram) of package 0
            continue
        try:
            name = (d / "name").read_text().strip()
            zone = RaplZone(name, d / "energy_uj", int((d / "max_energy_range_uj").read_text().strip()))
            zone.read_uj()
        except PermissionError:
            reason = f"{d}/energy_uj is readable by root only (kernel >= 5.10); run as root or chmod it"
            continue
        except (OSError, ValueError) as exc:
            reason = f"{d}: {exc}"
            continue
        zones.append(zone)
    psys = [z for z in zones if z.name == "psys"]
    if psys:
        return psys, None
    if not zones:
        return [], reason or f"no Intel RAPL zones under {root}"
    return zones, None


def energy_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """after - before on a counter that wraps to 0 after max_energy_range_uj."""
    return after - before if after >= before else after + max_range_uj - before


@dataclass
class InaRail:
    name: str
    volts: Path  # in*_input, mV
    amps: Path  # curr*_input, mA

    def read_mw(self) -> float:
        return int(self.volts.read_text().strip()) * int(self.amps.read_text().strip()) / 1e3


def ina3221_rails(roots: tuple[Path, ...] = HWMON_ROOTS) -> list[InaRail]:
    """Labelled INA3221 channels (JetPack 5/6 mainline driver), one per rail name."""
    rails: dict[str, InaRail] = {}
    for root in roots:
        for hw in sorted(root.glob("*/hwmon/hwmon*")) + sorted(root.glob("hwmon*")):
            try:
                if (hw / "name").exists() and (hw / "name").read_text().strip() != "ina3221":
                    continue
            except OSError:
                continue
            for label in sorted(hw.glob("in*_label")):
                n = label.name[2:].split("_")[0]
                rail = InaRail(label.read_text().strip(), hw / f"in{n}_input", hw / f"curr{n}_input")
                try:
                    rail.read_mw()
                except (OSError, ValueError):
                    continue
                if rail.name and rail.name not in rails and not rail.name.startswith("NC"):
                    rails[rail.name] = rail
    return list(rails.values())
