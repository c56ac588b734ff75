"""Content-hash stage skipping: a stage whose config and input artifacts are unchanged, and
whose outputs still hold the bytes it wrote (sha256 checked), is not run again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgetl.fileio import sha256_file, write_text_atomic


class StageCache:
    def __init__(self, run_dir: Path, force: set[str]):
        self.run_dir, self.force = run_dir, force

    def key(self, stage: str, config: Any, inputs: list[Path] = ()) -> str:
        h = hashlib.sha256(stage.encode())
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
        for p in inputs:
            h.update(sha256_file(p).encode())
        return h.hexdigest()

    def _record_path(self, stage: str) -> Path:
        return self.run_dir / stage / "stage.json"

    def lookup(self, stage: str, key: str) -> dict | None:
        """The recorded result when the stage can be skipped, else None."""
        path = self._record_path(stage)
        if stage in self.force or not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        if record.get("key") != key:
            return None
        outputs = record.get("outputs", {})
        if not isinstance(outputs, dict):  # a record from before output hashes were kept
            return None
        for p, digest in outputs.items():
            if not Path(p).is_file() or sha256_file(p) != digest:
                return None  # deleted, truncated or edited since: redo the stage
        return record["result"]

    def miss_reason(self, stage: str, key: str) -> str:
        """Why ``lookup`` found nothing to reuse, in words (for the log and the report)."""
        path = self._record_path(stage)
        if stage in self.force:
            return f"forced (--force {stage})"
        if not path.exists():
            return "no earlier run"
        try:
            same = json.loads(path.read_text()).get("key") == key
        except json.JSONDecodeError:
            return "its cache record is unreadable"
        return "an output was deleted or edited" if same else "its config or input files changed"

    def store(self, stage: str, key: str, outputs: list[Path], result: Any, seconds: float) -> None:
        write_text_atomic(
            self._record_path(stage),
            json.dumps(
                {
                    "key": key,
                    "outputs": {str(p): sha256_file(p) for p in outputs},
                    "seconds": seconds,
                    "result": result,
                },
                indent=2,
                default=str,
            ),
        )
