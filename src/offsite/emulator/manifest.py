"""The bundle manifest, checked before anything else of a bundle is read: the keys the loader relies on must be
there with the right types, the format version must be one this offsite reads, the layer map must make sense,
and every file it names must be a plain name inside the bundle's folder. Keys the loader does not need (the
strategy, clustering, fidelity, versions, ...) may be anything, so that newer writers can add their own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import OffsiteError
from .layer_map import LayerMap, validate_adapter_layers

BUNDLE_FORMAT = "offsite-bundle"
FORMAT_VERSION = 1
ADAPTER_FILE = "adapter.safetensors"
EMULATOR_FILE = "emulator.safetensors"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# What the loader reads, and the JSON type each must have (nested dicts are checked key by key).
SCHEMA: dict[str, Any] = {
    "format": str,
    "format_version": int,
    "layer_map": {"sources": list, "adapter_layers": list},
    "base_model": {"fingerprint": str, "num_layers": int, "num_parameters": int},
    "bundle_parameters": int,
    "adapter_parameters": int,
    "files": dict,
}
_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def _is(value: Any, kind: type) -> bool:
    # JSON true/false are Python bools, which are ints: never accept them where a number belongs.
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def check_schema(data: Any, schema: dict[str, Any], where: str, prefix: str = "") -> None:
    """Every key of ``schema`` is in ``data`` with the type it names; extra keys are allowed."""
    if not isinstance(data, dict):
        raise OffsiteError(f"{where}: {prefix.rstrip('.') or 'the manifest'} must be a JSON object")
    for key, kind in schema.items():
        if key not in data:
            raise OffsiteError(f"{where}: key {prefix}{key} is missing")
        if isinstance(kind, dict):
            check_schema(data[key], kind, where, f"{prefix}{key}.")
        elif not _is(data[key], kind):
            raise OffsiteError(f"{where}: {prefix}{key} must be {_TYPE_NAMES[kind]}, not {type(data[key]).__name__}")


def read_layer_map(data: Any, num_layers: int, where: str) -> LayerMap:
    """The layer map of a manifest, with every source in range and each adapter layer at its own position."""
    check_schema(data, SCHEMA["layer_map"], where, "layer_map.")
    sources, adapter = data["sources"], data["adapter_layers"]
    if len(sources) != num_layers:
        raise OffsiteError(f"{where}: the layer map has {len(sources)} positions but the base model {num_layers} layers")
    for position, source in enumerate(sources):
        if source is not None and not (_is(source, int) and 0 <= source < num_layers):
            raise OffsiteError(f"{where}: position {position} takes layer {source!r}, which is not in 0..{num_layers - 1}")
    if not all(_is(layer, int) for layer in adapter):
        raise OffsiteError(f"{where}: adapter_layers must be integers")
    copies = data.get("copies", [])
    if not isinstance(copies, list) or not all(_is(position, int) for position in copies):
        raise OffsiteError(f"{where}: layer_map.copies must be a list of positions")
    try:
        validate_adapter_layers(adapter, num_layers)
        misplaced = [layer for layer in adapter if sources[layer] != layer]
        if misplaced:
            raise OffsiteError(f"adapter layer {misplaced[0]} must hold its own block at position {misplaced[0]}, "
                               f"not {sources[misplaced[0]]!r}")
        return LayerMap.from_json(data)
    except OffsiteError as exc:
        raise OffsiteError(f"{where}: {exc}") from None


def _check_file_name(name: str, where: str) -> None:
    if not name or name in (".", "..") or re.search(r"[/\\\x00]", name) or Path(name).is_absolute():
        raise OffsiteError(f"{where}: file {name!r} is a path outside the bundle's folder; only plain names are allowed")


def check_manifest(data: Any, where: str) -> LayerMap:
    """Check a bundle manifest (see the module's docstring); return its layer map."""
    check_schema(data, SCHEMA, where)
    if data["format"] != BUNDLE_FORMAT:
        raise OffsiteError(f"{where}: not an offsite bundle (format is {data['format']!r})")
    if data["format_version"] != FORMAT_VERSION:
        raise OffsiteError(f"{where}: unknown format version {data['format_version']}; this offsite reads "
                           f"version {FORMAT_VERSION} (a newer offsite may read it)")
    num_layers = data["base_model"]["num_layers"]
    if num_layers < 2:
        raise OffsiteError(f"{where}: base_model.num_layers must be at least 2, not {num_layers}")
    layer_map = read_layer_map(data["layer_map"], num_layers, where)
    files, digests = data["files"], data.get("sha256", {})
    for name, size in files.items():
        _check_file_name(name, where)
        if not _is(size, int) or size < 0:
            raise OffsiteError(f"{where}: the size of {name} must be a non-negative integer, not {size!r}")
    for required in (EMULATOR_FILE, ADAPTER_FILE):
        if required not in files:
            raise OffsiteError(f"{where}: files does not list {required}")
    if not isinstance(digests, dict) or any(n not in files or not (isinstance(d, str) and _SHA256.match(d))
                                            for n, d in digests.items()):
        raise OffsiteError(f"{where}: sha256 must map listed files to hex SHA-256 digests")
    return layer_map
