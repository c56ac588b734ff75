"""The tegrastats parser on real recorded lines of every board family and JetPack format."""

from __future__ import annotations

import pytest

from edgetl.bench.power.tegrastats import parse_line
from tests.power.recorded_tegrastats import RECORDED

# board: (watts, what the watts cover, GPU MHz, EMC MHz, highest CPU MHz, hottest sensor C)
EXPECTED = {
    "orin_nx_8gb_jp6": (17.946, "VDD_IN", 713, 3199, 1984, 65.562),
    "orin_nano_8gb_jp6": (5.704, "VDD_IN", 305, 2133, 729, 48.843),
    "agx_orin_64gb": (
        7.056,
        "sum of VDDQ_VDD2_1V8AO+VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0",
        0,
        2133,
        729,
        44.562,
    ),
    "xavier_nx_jp5": (5.079, "VDD_IN", 510, 1600, 1907, 39.5),
    "agx_xavier_jp4": (7.632, "sum of CPU+CV+GPU+SOC+SYS5V+VDDRQ", None, None, 1190, 32.0),
    "tx2_jp4": (5.297, "VDD_IN", 114, 1866, 2034, 42.5),
    "nano_jp4": (2.003, "POM_5V_IN", 76, 1600, 518, 39.5),
}


@pytest.mark.parametrize("board", sorted(RECORDED))
def test_every_recorded_format_parses(board):
    s = parse_line(RECORDED[board])
    watts, scope, gpu, emc, cpu, hottest = EXPECTED[board]
    got_w, got_scope = s.total_w()
    assert got_w == pytest.approx(watts) and got_scope == scope
    assert s.gpu_mhz == gpu and s.emc_mhz == emc and max(s.cpu_mhz) == cpu
    assert max(s.temps_c.values()) == pytest.approx(hottest)
    assert "ram" not in {k.lower() for k in s.rails_mw} and "swap" not in {k.lower() for k in s.rails_mw}


def test_rails_temperatures_and_loads_in_detail():
    orin = parse_line(RECORDED["orin_nx_8gb_jp6"])
    assert orin.rails_mw == {
        "VDD_IN": 17946,
        "VDD_CPU_GPU_CV": 8896,
        "VDD_SOC": 3923,
    }  # instantaneous, not avg
    assert orin.temps_c["cpu"] == 65.562 and orin.temps_c["tj"] == 65.562 and orin.gpu_load_pct == 84
    agx = parse_line(RECORDED["agx_orin_64gb"])
    assert "gpu" not in agx.temps_c and "cv0" not in agx.temps_c  # -256C: sensor powered down
    assert agx.temps_c["cpu"] == 44.562  # upper-case CPU@ is read like cpu@
    assert agx.rails_mw["NC"] == 0 and "NC" not in agx.total_w()[1]
    nano = parse_line(RECORDED["nano_jp4"])
    assert nano.rails_mw == {"POM_5V_IN": 2003, "POM_5V_GPU": 0, "POM_5V_CPU": 320}  # IRAM is no rail
    assert "pmic" not in parse_line(RECORDED["agx_xavier_jp4"]).temps_c  # PMIC@100C is a placeholder


def test_a_third_max_value_and_non_tegrastats_lines():
    later = RECORDED["orin_nano_8gb_jp6"].replace("VDD_IN 5704mW/5704mW", "VDD_IN 5704mW/5600mW/6100mW")
    assert parse_line(later).rails_mw["VDD_IN"] == 5704
    assert parse_line("tegrastats: permission denied") is None
    assert parse_line("RAM 2461/7620MB (lfb 3x2MB)").total_w() == (
        None,
        "no power rails in tegrastats output (run it as root?)",
    )
