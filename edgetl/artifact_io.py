"""Where each artifact format keeps its manifest. The one module that knows the three layouts:

- checkpoint ``.safetensors``: the safetensors header metadata, key ``MANIFEST_KEY``;
- ONNX ``.onnx``: an entry of ``ModelProto.metadata_props``, key ``MANIFEST_KEY``;
- TensorRT engine: a sidecar ``<engine>.json`` (``sidecar_path``) holding the manifest's fields
  plus a ``build`` block (TensorRT version, GPU, flags), since a plan file cannot hold metadata.

Schema-free on purpose: this module moves the manifest *document* (its JSON text) in and out of
files and imports nothing from ``edgetl.manifest`` or ``edgetl.models``; ``edgetl.manifest``
validates the document (``read_manifest``), so the schema can import this module without a cycle.
``read_artifact_document`` also returns what the file says about the model itself (ONNX graph
input/output dims, checkpoint tensor shapes from the header), so the manifest can be checked
against the model it describes. Heavy libraries (safetensors, onnx) are imported inside the
functions that need them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edgetl.errors import ModelError
from edgetl.fileio import atomic_path, read_bytes_capped, sha256_file, write_text_atomic

MANIFEST_KEY = "edgetl.manifest"
BUILD_KEY = "build"
# A manifest is labels, a contract, provenance and short curves: kilobytes. Anything this large
# is not one, and reading or showing it would only cost memory and time.
MAX_MANIFEST_BYTES = 8 << 20
MAX_SIDECAR_BYTES = MAX_MANIFEST_BYTES + (1 << 20)  # plus the build block
MAX_JSON_DEPTH = 64  # edgetl writes 4 levels; a deeper document is forged or damaged
_SHA256 = re.compile(r"[0-9a-f]{64}")


# JSON documents -----------------------------------------------------------------------------
def _depth(value: Any) -> int:
    """The nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack += [(v, level + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


def load_json_document(
    text: str, source: str, what: str = "edgetl manifest", limit: int = MAX_MANIFEST_BYTES
) -> Any:
    """``json.loads`` for a manifest-sized document: a ModelError naming ``source`` when it is
    over ``limit`` characters, not JSON, or nested deeper than ``MAX_JSON_DEPTH``."""
    if len(text) > limit:
        raise ModelError(
            f"{source}: the {what} is {len(text) / 1e6:.1f} MB of text, over edgetl's limit of "
            f"{limit / 1e6:.1f} MB; it was forged or damaged. Re-create the artifact."
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{source}: the {what} is not valid JSON ({exc}).") from None
    except RecursionError:
        data = None
    if data is None or _depth(data) > MAX_JSON_DEPTH:
        raise ModelError(
            f"{source}: the {what} is nested more than {MAX_JSON_DEPTH} levels deep; edgetl writes "
            "flat documents, so this one was forged or damaged. Re-create the artifact."
        )
    return data


# TensorRT engine: sidecar JSON -----------------------------------------------------------------
def sidecar_path(engine: str | Path) -> Path:
    """The sidecar of ``engine``: ``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, manifest_json: str, build_info: dict[str, Any]) -> Path:
    """Write ``<engine>.json`` atomically: the manifest's fields plus ``build``; returns its path."""
    path = sidecar_path(engine)
    write_text_atomic(path, json.dumps({**json.loads(manifest_json), BUILD_KEY: build_info}, indent=2))
    return path


def read_sidecar(engine: str | Path) -> tuple[str, dict[str, Any]]:
    """(manifest JSON, build block) from ``<engine>.json``, read with a size cap; a ModelError
    when absent, too large, not a JSON object, or with a build block that is not one."""
    path = sidecar_path(engine)
    if not path.exists() and not path.is_symlink():
        raise ModelError(f"{engine}: no sidecar manifest {path.name} beside the engine.")
    raw = read_bytes_capped(path, MAX_SIDECAR_BYTES, "engine sidecar manifest", ModelError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: the engine's sidecar manifest is not UTF-8 JSON text.") from None
    data = load_json_document(text, str(path), "engine's sidecar manifest", MAX_SIDECAR_BYTES)
    if not isinstance(data, dict):
        raise ModelError(
            f"{path}: the engine's sidecar manifest is a JSON {type(data).__name__}, not an object "
            "of manifest keys; rebuild the engine with `edgetl build`."
        )
    build = data.pop(BUILD_KEY, {})
    _check_build(build, path)
    return json.dumps(data), build


def _check_build(build: Any, path: Path) -> None:
    """A sidecar's build block is an object whose strings hold no ``..`` path step."""
    if not isinstance(build, dict):
        raise ModelError(
            f"{path}: the sidecar's build block is a {type(build).__name__}, not an object; "
            "rebuild the engine with `edgetl build`."
        )
    stack: list[tuple[str, Any]] = [(f"{BUILD_KEY}.{k}", v) for k, v in build.items()]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack += [(f"{key}.{k}", v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(f"{key}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, str) and ".." in PurePosixPath(value.replace("\\", "/")).parts:
            raise ModelError(
                f"{path}: {key} = {value[:80]!r} climbs out of its folder ('..'); edgetl writes "
                "no such path. Rebuild the engine with `edgetl build`."
            )


def sniff_model_format(path: Path) -> str | None:
    """What ``path`` is when its bytes are another model format (zip/torch, safetensors,
    ONNX), as a phrase; None otherwise."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a torch checkpoint?)"
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "a safetensors checkpoint"
    if head[:1] == b"\x08":  # protobuf field 1 (ir_version) opens every ONNX file
        import onnx

        try:
            model = onnx.load_model_from_string(path.read_bytes())
        except Exception:  # noqa: BLE001 - not protobuf: not ONNX either
            return None
        if model.graph.node:
            return "an ONNX model"
    return None


def check_engine_file(engine: str | Path, build: dict[str, Any]) -> None:
    """A ModelError unless ``engine`` holds the bytes its sidecar's ``build.engine_sha256`` names
    (a renamed, replaced or foreign file is never run or shown as this engine)."""
    engine = Path(engine)
    side = sidecar_path(engine)
    foreign = sniff_model_format(engine)
    if foreign:
        raise ModelError(
            f"{engine}: the file is {foreign}, not a TensorRT engine; build an engine from an ONNX "
            "model with `edgetl build`, or pass the model under its own suffix."
        )
    want = build.get("engine_sha256")
    if not isinstance(want, str) or not _SHA256.fullmatch(want):
        raise ModelError(
            f"{side}: build.engine_sha256 = {str(want)[:80]!r} is not a sha256, so the engine's bytes "
            "cannot be checked against the build that wrote them; rebuild it with `edgetl build`."
        )
    got = sha256_file(engine)
    if got != want:
        raise ModelError(
            f"{engine}: the file's sha256 {got[:16]}… is not the build.engine_sha256 {want[:16]}… its "
            f"sidecar {side.name} records: the engine was replaced or damaged after the build. "
            "Rebuild it with `edgetl build`."
        )


def read_build_info(engine: str | Path) -> dict[str, Any]:
    """The sidecar's ``build`` block, or {} when the engine has no sidecar."""
    return read_sidecar(engine)[1] if sidecar_path(engine).exists() else {}


# checkpoint: safetensors metadata -----------------------------------------------------------
def save_safetensors(tensors: dict[str, Any], manifest_json: str, path: str | Path) -> Path:
    """Write torch ``tensors`` with the manifest in the header metadata, atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={MANIFEST_KEY: manifest_json})
    return Path(path)


def read_safetensors_manifest(path: str | Path) -> str:
    """The manifest JSON in a safetensors file's metadata (the tensors are not read)."""
    return _read_safetensors(path, shapes=False)[0]


def read_safetensors_with_shapes(path: str | Path) -> tuple[str, dict[str, tuple[int, ...]]]:
    """(manifest JSON, {tensor name: shape}) from the header alone: no weight is loaded."""
    return _read_safetensors(path, shapes=True)


def _read_safetensors(path: str | Path, shapes: bool) -> tuple[str, dict[str, tuple[int, ...]]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            dims = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()} if shapes else {}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise ModelError(f"{path}: not a readable safetensors file ({exc}).") from None
    if MANIFEST_KEY not in meta:
        raise ModelError(
            f"{path}: a safetensors file without an edgetl manifest; only edgetl checkpoints "
            "can be evaluated directly (pass plain weights to finetune with --weights)."
        )
    return meta[MANIFEST_KEY], dims


def _regular(path: Path) -> None:
    """A ModelError unless ``path`` is a regular file (a device such as /dev/zero is read forever)."""
    if not path.exists():
        raise ModelError(f"{path}: no such file.")
    if not path.is_file():
        raise ModelError(f"{path}: not a regular file (a folder, device or FIFO); pass a model file.")


# ONNX: metadata_props ---------------------------------------------------------------------
def load_onnx(path: str | Path):
    """onnx.load with an error that names the file when it is corrupt or truncated."""
    import onnx

    path = Path(path)
    _regular(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ModelError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]}); the file is "
            "corrupt or truncated. Re-export it."
        ) from None
    if not model.graph.node:
        raise ModelError(f"{path}: the ONNX graph is empty; the file is corrupt or truncated.")
    return model


def save_onnx_atomic(model, path: str | Path) -> Path:
    import onnx

    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return Path(path)


def get_onnx_manifest(model) -> str | None:
    """The manifest JSON of an onnx.ModelProto, or None when it has none."""
    for prop in model.metadata_props:
        if prop.key == MANIFEST_KEY:
            return prop.value
    return None


def set_onnx_manifest(model, manifest_json: str) -> None:
    """Write (or replace) the manifest entry of an onnx.ModelProto in place."""
    for prop in list(model.metadata_props):
        if prop.key == MANIFEST_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, manifest_json


def _dims(value_info) -> tuple[int | None, ...]:
    """A tensor's dims; None where symbolic (``batch``) or unknown."""
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


def onnx_io_dims(model) -> tuple[tuple[int | None, ...], dict[str, tuple[int | None, ...]]]:
    """(dims of the first graph input that is not an initializer, output name -> dims in graph
    order); None for a symbolic or unknown dim, () when the graph declares no input."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    return _dims(inputs[0]) if inputs else (), {o.name: _dims(o) for o in model.graph.output}


def require_onnx_manifest(model, path) -> str:
    """The manifest JSON of an onnx.ModelProto loaded from ``path``; a ModelError without one."""
    text = get_onnx_manifest(model)
    if text is None:
        raise ModelError(
            f"{path}: an ONNX model without an edgetl manifest. Pass --input-size, --mean, --std "
            "and --labels where a command accepts them, or export it with `edgetl export`."
        )
    return text


def read_onnx_manifest_json(path: str | Path) -> str:
    return require_onnx_manifest(load_onnx(path), path)


# any artifact ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ArtifactDocument:
    """An artifact's manifest JSON plus the facts about the model it describes that can be read
    without running it, so ``edgetl.manifest`` can check the one against the other."""

    text: str
    source: str  # the file to name in errors (an engine's sidecar)
    file_format: str = ""  # what the file is: "checkpoint", "onnx" or "trt-engine"
    onnx_input: tuple[int | None, ...] | None = None  # ONNX: graph input dims (None: symbolic)
    onnx_outputs: dict[str, tuple[int | None, ...]] | None = None  # ONNX: output name -> dims
    tensor_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # checkpoint header


def read_artifact_document(path: str | Path) -> ArtifactDocument:
    """The manifest JSON of any artifact (.safetensors, .onnx, or an engine with its sidecar)
    and what its file says about the model: ONNX graph input/output dims, checkpoint tensor
    shapes (header only). ``edgetl.manifest.read_manifest`` validates both."""
    path = Path(path)
    _regular(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        text, shapes = read_safetensors_with_shapes(path)
        return ArtifactDocument(text, str(path), "checkpoint", tensor_shapes=shapes)
    if suffix == ".onnx":
        model = load_onnx(path)
        text = require_onnx_manifest(model, path)
        inp, out = onnx_io_dims(model)
        return ArtifactDocument(text, str(path), "onnx", onnx_input=inp, onnx_outputs=out)
    sidecar = sidecar_path(path)
    if sidecar.exists() or sidecar.is_symlink():
        text, build = read_sidecar(path)
        check_engine_file(path, build)
        return ArtifactDocument(text, str(sidecar), "trt-engine")
    raise ModelError(
        f"{path}: unknown artifact type {suffix!r}; expected .safetensors, .onnx, or an engine "
        f"with a sidecar {sidecar.name}."
    )


def read_manifest_json(path: str | Path) -> tuple[str, str]:
    """(manifest JSON, source to name in errors) of any artifact: .safetensors, .onnx, or an
    engine with its sidecar. ``edgetl.manifest.read_manifest`` validates it into a Manifest."""
    doc = read_artifact_document(path)
    return doc.text, doc.source
