"""Property tests of the readers of files another party may hand over: whatever the input, each ends in the tool's
own error (:class:`OffsiteError`) or a valid object, never in another exception."""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offsite import OffsiteError
from offsite.data import load_jsonl_examples
from offsite.emulator.manifest import check_manifest, read_layer_map
from offsite.similarity.files import read_similarity_file
from offsite.train.metrics import read_metrics

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LAYERS = 6

scalars = (st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=8))
json_values = st.recursive(
    scalars, lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=24,
)
layer_indices = st.none() | st.integers(-2, LAYERS + 2) | scalars

VALID_MANIFEST = {
    "format": "offsite-bundle",
    "format_version": 1,
    "layer_map": {"sources": [0, 2, 2, 2, None, 5], "adapter_layers": [0, 5], "copies": []},
    "base_model": {"fingerprint": "0123456789abcdef", "num_layers": LAYERS, "num_parameters": 600},
    "bundle_parameters": 400,
    "adapter_parameters": 200,
    "files": {"emulator.safetensors": 10, "adapter.safetensors": 10, "config.json": 2},
    "sha256": {"config.json": "0" * 64},
}


def _paths(value, prefix=()):
    """Every key path inside nested dicts and lists."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


@st.composite
def mutated_manifests(draw):
    """A valid manifest with a few parts replaced by arbitrary JSON or removed."""
    manifest = copy.deepcopy(VALID_MANIFEST)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(manifest) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values | layer_indices)
    return manifest


def test_the_readers_accept_valid_input(tmp_path):
    """The property tests below accept a reader's own error for any input; a reader that refused everything would
    pass them, so each valid input here must come back as its value."""
    layer_map = check_manifest(copy.deepcopy(VALID_MANIFEST), "manifest")
    assert layer_map.sources == (0, 2, 2, 2, None, 5) and layer_map.adapter_layers == (0, 5)
    assert read_layer_map(VALID_MANIFEST["layer_map"], LAYERS, "layer map") == layer_map
    cka = [[1.0 if i == j else 0.5 + 0.01 * (i + j) for j in range(LAYERS)] for i in range(LAYERS)]
    (tmp_path / "similarity.json").write_text(json.dumps({"cka": cka, "num_layers": LAYERS}))
    assert read_similarity_file(tmp_path / "similarity.json", LAYERS)[0].tolist() == cka
    (tmp_path / "task.jsonl").write_text(json.dumps({"prompt": "Q?", "choices": ["a", "b"], "gold": 1}) + "\n")
    [example] = load_jsonl_examples(tmp_path / "task.jsonl")
    assert (example.prompt, example.choices, example.gold) == ("Q?", ("a", "b"), 1)


def ends_well(read, *args):
    """Run a reader: its own error is fine; any other exception fails the test. Returns the result or None."""
    try:
        return read(*args)
    except OffsiteError as error:
        assert "\n" not in str(error)
        return None


@SETTINGS
@given(mutated_manifests() | json_values)
def test_manifest_reader(data):
    layer_map = ends_well(check_manifest, data, "manifest")
    if layer_map is not None:
        assert layer_map.num_layers == data["base_model"]["num_layers"]
        assert all(s is None or 0 <= s < layer_map.num_layers for s in layer_map.sources)
        assert all(layer_map.sources[a] == a for a in layer_map.adapter_layers)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["sources", "adapter_layers", "copies"]),
                       st.lists(layer_indices, max_size=8) | json_values) | json_values)
def test_layer_map_reader(data):
    layer_map = ends_well(read_layer_map, data, LAYERS, "layer map")
    if layer_map is not None:
        assert len(layer_map.sources) == LAYERS and layer_map.emulator_sources
        assert set(layer_map.adapter_positions) <= set(range(len(layer_map.emulator_sources)))


def _matrices(size: int):
    return st.lists(st.lists(st.floats(-0.5, 1.5) | st.floats(allow_nan=True) | scalars, min_size=size, max_size=size),
                    min_size=size, max_size=size)


@SETTINGS
@given(st.fixed_dictionaries({"cka": _matrices(LAYERS) | _matrices(4) | json_values},
                             optional={"num_layers": st.integers(0, 10) | scalars, "importance": json_values})
       | json_values)
def test_similarity_reader(tmp_path, data):
    path = tmp_path / "similarity.json"
    path.write_text(json.dumps(data))
    result = ends_well(read_similarity_file, path, LAYERS)
    if result is not None:
        cka, _ = result
        assert cka.shape == (LAYERS, LAYERS) and all(0 - 1e-6 <= v <= 1 + 1e-6 for v in cka.flat)


json_lines = st.lists(
    st.fixed_dictionaries({}, optional={"prompt": json_values, "choices": st.lists(st.text(max_size=5), max_size=4)
                                        | json_values, "gold": st.integers(-2, 5) | json_values}).map(json.dumps)
    | json_values.map(json.dumps) | st.text(max_size=20),
    max_size=6,
).map(lambda lines: "\n".join(lines).encode("utf-8"))


@SETTINGS
@given(json_lines | st.binary(max_size=80))
def test_jsonl_reader(tmp_path, content):
    path = tmp_path / "task.jsonl"
    path.write_bytes(content)
    examples = ends_well(load_jsonl_examples, path)
    if examples is not None:
        assert examples and all(0 <= e.gold < len(e.choices) and isinstance(e.prompt, str) for e in examples)


@SETTINGS
@given(st.lists(st.fixed_dictionaries({"step": st.integers(0, 100)}, optional={"loss": st.floats(0, 10)})
                .map(json.dumps) | st.text(max_size=12), max_size=6).map("\n".join) | st.binary(max_size=60).map(repr))
def test_metrics_reader(tmp_path, text):
    path = tmp_path / "metrics.jsonl"
    path.write_text(text)
    records = ends_well(read_metrics, path)
    if records is not None:
        assert all(isinstance(r["step"], int) for r in records)


@pytest.mark.parametrize("cut", range(1, 40, 7))
def test_a_metrics_line_cut_short_at_any_point_is_left_out(tmp_path, cut):
    complete = [{"step": 1, "loss": 2.5}, {"step": 2, "loss": math.pi}]
    text = "".join(json.dumps(r) + "\n" for r in complete) + json.dumps({"step": 3, "loss": 1.25, "lr": 1e-4})
    path = tmp_path / "metrics.jsonl"
    path.write_text(text[: len(text) - len(json.dumps({"step": 3, "loss": 1.25, "lr": 1e-4})) + cut])
    assert read_metrics(path) == complete
