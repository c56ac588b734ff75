"""The shape of the package at two commits, side by side: classification-specific sites outside
the task packages (``edgetl/tasks/``), the flat top-level module count, the largest modules, the longest
functions and the string-key index sites (``x["key"]``, ``x[f"..."]``: results read as nested dicts)
(issue 19's before/after).

    python benchmarks/code_shape.py [BEFORE [AFTER]]   # default: e72c88e (before tasks) and HEAD

A "classification-specific site" is a line outside ``edgetl/tasks/`` (the task packages and the
contract) that names top-1/top-5, logits, argmax,
cross-entropy, num_classes or classifier(s): a crude but repeatable count of where the chain
still assumes a classifier.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = re.compile(r"top-?1|top-?5|logits?\b|argmax|cross.entropy|num_classes|classifiers?\b", re.I)
CONTRACT = ("edgetl/tasks/",)  # the task packages and the contract itself


def files_at(rev: str) -> dict[str, str]:
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "edgetl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out = {}
    for name in names:
        if name.endswith(".py"):
            out[name] = subprocess.run(
                ["git", "show", f"{rev}:{name}"], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
    return out


def function_lengths(path: str, text: str) -> list[tuple[int, str]]:
    rows = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            rows.append((node.end_lineno - node.lineno + 1, f"{path}:{node.name}"))
    return rows


def string_key_indexes(text: str) -> int:
    """``x["key"]`` and ``x[f"..."]`` subscripts: nested dicts read by string keys."""
    return sum(
        1
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Subscript)
        and (
            isinstance(node.slice, ast.JoinedStr)
            or (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str))
        )
    )


def shape(rev: str) -> dict:
    files = files_at(rev)
    sites = {}
    for path, text in files.items():
        if path.startswith(CONTRACT):
            continue
        hits = sum(1 for line in text.splitlines() if SITE.search(line))
        if hits:
            sites[path] = hits
    lengths = sorted((n for p, t in files.items() for n in function_lengths(p, t)), reverse=True)
    top_level = sorted(p for p in files if p.count("/") == 1)
    return {
        "rev": subprocess.run(
            ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip(),
        "classification_sites_outside_tasks": sum(sites.values()),
        "modules_with_sites": len(sites),
        "top_sites": sorted(sites.items(), key=lambda kv: -kv[1])[:12],
        "flat_top_level_modules": len(top_level),
        "top_level": top_level,
        "modules": len(files),
        "largest_modules": sorted(((len(t.splitlines()), p) for p, t in files.items()), reverse=True)[:8],
        "longest_functions": lengths[:8],
        "functions_over_100_lines": sum(1 for n, _ in lengths if n > 100),
        "string_key_index_sites": sum(string_key_indexes(t) for t in files.values()),
        "top_string_key_modules": sorted(
            ((p, n) for p, t in files.items() if (n := string_key_indexes(t))), key=lambda kv: -kv[1]
        )[:12],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", nargs="?", default="e72c88e", help="commit before (default: before tasks)")
    ap.add_argument("after", nargs="?", default="HEAD", help="commit after (default: HEAD)")
    args = ap.parse_args()
    before, after = args.before, args.after
    result = {"before": shape(before), "after": shape(after)}
    out = ROOT / "benchmarks" / "results" / "code_shape.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for key in ("classification_sites_outside_tasks", "modules_with_sites", "flat_top_level_modules",
                "functions_over_100_lines", "string_key_index_sites"):  # fmt: skip
        print(f"{key:40s} {result['before'][key]:>6} -> {result['after'][key]}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
