"""Helpers shared by the benchmark scripts: write a result JSON with its environment."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, payload: dict, threads: int | None = None) -> Path:
    from edgetl.bench.envstamp import environment_stamp

    payload = {
        "benchmark": name,
        "command": "python " + " ".join(sys.argv),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "environment": environment_stamp(threads),
        **payload,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    return out
