"""YAML as edgetl reads it: ``yaml.safe_load`` (plain data, no tag ever runs code) that refuses a
key given twice in one mapping, where PyYAML silently keeps the last (``name:`` twice in a config
would otherwise drop the first without a word). Merge keys (``<<: *base``) may still be
overridden: that is what they are for."""

from __future__ import annotations

from typing import Any

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse duplicate keys (a ConstructorError with its line)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r} (first at line {first.start_mark.line + 1}); "
                        "give each key once",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, UniqueKeyLoader.construct_yaml_map
)


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


MAX_YAML_BYTES = 16 << 20  # configs, recipes, targets: kilobytes


def load_file(path, error=None) -> Any:
    """The YAML document in ``path`` (UTF-8, size-capped, duplicate keys refused); ``error`` (an
    EdgetlError subclass) names the file and the line for anything wrong with it."""
    from pathlib import Path

    from edgetl.errors import ConfigError
    from edgetl.fileio import read_bytes_capped

    error, path = error or ConfigError, Path(path)
    raw = read_bytes_capped(path, MAX_YAML_BYTES, "YAML file", error)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); it is not a "
            "YAML file, or it was saved in another encoding: save it as UTF-8."
        ) from None
    try:
        return safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise error(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
