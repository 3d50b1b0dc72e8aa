"""Bad input, run as a user runs it: each case ends in one line on stderr, a non-zero exit, no traceback, and
leaves every file around it as it was (a listing of the tree with checksums, before and after, is equal except
for a fresh output path)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import struct
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file

from offsite.cli import main
from offsite.emulator import block_state, save_adapter, save_bundle
from offsite.emulator.layer_map import LayerMap
from offsite.models.fingerprint import fingerprint
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.train import FinetuneConfig, finetune

LAYER_MAP = LayerMap((0, 1, None, None, 4, 5), (0, 5))
EMULATE = ["emulate", "model", "--strategy", "uniform", "--keep", "2", "--adapter", "1,1", "--no-fidelity"]
FINETUNE = ["finetune", "bundle", "--task", "task.jsonl", "--out", "run", "--epochs", "1", "--batch-size", "4",
            "--max-length", "24", "--save-every", "1", "--no-progress"]
EVAL = ["eval", "bundle", "--tasks", "task.jsonl"]


def save_model(path: Path, seed: int):
    model = tiny_model("llama", num_layers=6, seed=seed)
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return model


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A working directory with everything the commands read: two models, a bundle, an adapter, data, a run."""
    root = tmp_path_factory.mktemp("world")
    model = save_model(root / "model", 0)
    other = save_model(root / "other_model", 1)
    save_bundle(model, tiny_tokenizer(), LAYER_MAP, root / "bundle", {"strategy": "uniform"})
    save_adapter(root / "other_adapter.safetensors", block_state(other, [0, 5], [0, 5]), fingerprint(other))
    rows = [{"prompt": f"{w}:", "choices": [w, "x"], "gold": 0} for w in ("cat", "dog", "sun", "map", "pen", "cup")]
    (root / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    similarity = {"model": "model", "num_layers": 6, "cka": [[1.0 if i == j else 0.5 for j in range(6)] for i in range(6)]}
    (root / "similarity.json").write_text(json.dumps(similarity))
    with contextlib.chdir(root):  # a run to resume, stopped after a checkpoint (FINETUNE continues it)
        finetune(FinetuneConfig(source="bundle", task="task.jsonl", out="run", epochs=1, batch_size=4, max_length=24,
                                save_every=1, stop_after_steps=1), progress=False)
    return root


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a checksum of each file."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def replace_file(bundle: Path, name: str, content: bytes) -> None:
    """Put ``content`` in a bundle file and record its size and checksum, so that only a deeper check can fail."""
    (bundle / name).write_bytes(content)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = len(content)
    manifest["sha256"][name] = hashlib.sha256(content).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def edit_tensors(name: str, change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / "bundle" / name
        tensors = load_file(path)
        with open(path, "rb") as handle:
            header = json.loads(handle.read(struct.unpack("<Q", handle.read(8))[0]))
        change(tensors)
        save_file(tensors, str(path), metadata=header.get("__metadata__"))
        replace_file(root / "bundle", name, path.read_bytes())
    return setup


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        manifest = json.loads((root / "bundle" / "manifest.json").read_text())
        change(manifest)
        (root / "bundle" / "manifest.json").write_text(json.dumps(manifest))
    return setup


def write(name: str, content: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return setup


def truncate(name: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])
    return setup


def flip_byte(root: Path) -> None:
    path = root / "bundle" / "emulator.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def garbage_header(root: Path) -> None:
    data = (root / "bundle" / "emulator.safetensors").read_bytes()
    replace_file(root / "bundle", "emulator.safetensors", struct.pack("<Q", 40) + b"{not json at all" + data[24:])


def pickled_weights(root: Path) -> None:
    pickled = root / "pickled.pt"
    torch.save(load_file(root / "bundle" / "emulator.safetensors"), pickled)
    replace_file(root / "bundle", "emulator.safetensors", pickled.read_bytes())
    pickled.unlink()


def metrics_line_cut_mid_file(root: Path) -> None:
    path = root / "run" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0][: len(lines[0]) // 2], *lines[1:]]) + "\n")


def similarity_with(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        data = json.loads((root / "similarity.json").read_text())
        change(data)
        (root / "similarity.json").write_text(json.dumps(data))
    return setup


def _nan(tensors: dict[str, torch.Tensor]) -> None:
    name = next(k for k in tensors if k.startswith("layers."))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")


def _add_removed_block(tensors: dict[str, torch.Tensor]) -> None:
    name = next(k for k in tensors if k.startswith("layers.0."))
    tensors[name.replace("layers.0.", "layers.3.", 1)] = tensors[name].clone()


def _drop_one(tensors: dict[str, torch.Tensor]) -> None:
    tensors.pop(next(k for k in tensors if k.startswith("layers.")))


def _transpose_one(tensors: dict[str, torch.Tensor]) -> None:
    name = next(k for k, t in tensors.items() if t.dim() == 2 and t.shape[0] != t.shape[1])
    tensors[name] = tensors[name].t().contiguous()


def _half(tensors: dict[str, torch.Tensor]) -> None:
    for name in tensors:
        tensors[name] = tensors[name].half()


def _set(*path_and_value):
    *path, value = path_and_value

    def change(data: dict) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value
    return change


def _both(*setups):
    def setup(root: Path) -> None:
        for one in setups:
            one(root)
    return setup


def _user_files(root: Path) -> None:
    (root / "precious.txt").write_text("the user's")
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("also the user's")


def _existing_dir(root: Path) -> None:
    (root / "existing").mkdir()
    (root / "existing" / "precious.txt").write_text("the user's")


def _second_bundle(root: Path) -> None:
    shutil.copytree(root / "bundle", root / "bundle2")


GGUF_CUT_SHORT = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + b"\x05"

# (id, setup, command line, what the one line must say, the fresh output path it may create)
CASES = [
    ("emulate into a directory holding a user's file", _existing_dir, [*EMULATE, "--out", "existing"],
     r"refusing to write to existing: it is a non-empty directory that offsite did not write.*--force", None),
    ("export into the current directory", _user_files, ["export", "bundle", "--out", "."],
     r"refusing to write to \.: it is the current directory.*--force", None),
    ("--out on a file", None, ["export", "bundle", "--out", "task.jsonl"], r"task.jsonl: it is a file.*--force", None),
    ("--out on the input bundle", None, ["export", "bundle", "--out", "bundle"], r"bundle: it is the input", None),
    ("--out on ..", None, ["export", "bundle", "--out", ".."], r"current directory or holds it", None),
    ("--out on a folder holding the input", None, ["plugin", "model", "bundle/adapter.safetensors", "--out", "bundle"],
     r"it holds the input", None),
    ("--out inside the input", None, [*FINETUNE[:4], "--out", "bundle/run"], r"inside the input bundle", None),
    ("--out of eval on a directory", None, ["eval", "model", "--tasks", "task.jsonl", "--out", "bundle"],
     r"it is a directory and a file is to be written", None),
    ("analyze into a directory holding a user's file", _existing_dir,
     ["analyze", "model", "--task", "task.jsonl", "--out", "existing"], r"did not write.*--force", None),
    ("finetune into another offsite artifact", _second_bundle, [*FINETUNE[:4], "--out", "bundle2"],
     r"bundle2 holds something other than a fine-tuning run", None),
    ("truncated safetensors", truncate("bundle/emulator.safetensors"), EVAL, r"truncated, corrupt or altered", None),
    ("corrupted safetensors data", flip_byte, EVAL, r"does not match the SHA-256", None),
    ("corrupted safetensors header", garbage_header, EVAL, r"corrupt or not a safetensors file", None),
    ("pickle renamed to safetensors", pickled_weights, EVAL, r"corrupt or not a safetensors file", None),
    ("truncated GGUF", write("cut.gguf", GGUF_CUT_SHORT), ["info", "cut.gguf"], r"cannot read GGUF file .*cut.gguf: it is truncated", None),
    ("manifest with a missing key", edit_manifest(lambda m: m.pop("layer_map")), EVAL, r"key layer_map is missing", None),
    ("manifest without its parameter count", edit_manifest(lambda m: m.pop("bundle_parameters")), ["info", "bundle"],
     r"key bundle_parameters is missing", None),
    ("manifest with a wrong type", edit_manifest(_set("base_model", "num_layers", "six")), EVAL,
     r"base_model.num_layers must be an integer, not str", None),
    ("manifest with a path outside its folder", edit_manifest(_set("files", "../outside.txt", 3)), EVAL,
     r"'../outside.txt' is a path outside the bundle's folder", None),
    ("manifest with a source layer of -1", edit_manifest(_set("layer_map", "sources", [0, -1, None, None, 4, 5])),
     EVAL, r"position 1 takes layer -1, which is not in 0..5", None),
    ("manifest with a source layer of 99", edit_manifest(_set("layer_map", "sources", [0, 1, None, None, 99, 5])),
     EVAL, r"position 4 takes layer 99", None),
    ("manifest with an adapter layer not at its position",
     edit_manifest(_set("layer_map", "sources", [1, 1, None, None, 4, 5])), EVAL,
     r"adapter layer 0 must hold its own block", None),
    ("manifest of an unknown format version", edit_manifest(_set("format_version", 99)), EVAL,
     r"unknown format version 99", None),
    ("manifest that is not JSON", write("bundle/manifest.json", b"{\"format\": "), EVAL, r"not valid JSON", None),
    ("NaN weights", edit_tensors("emulator.safetensors", _nan), EVAL, r"holds non-finite values", None),
    ("a tensor of a removed block", edit_tensors("adapter.safetensors", _add_removed_block), EVAL,
     r"adapter.safetensors holds tensor layers\.3\.", None),
    ("a missing tensor", edit_tensors("emulator.safetensors", _drop_one), EVAL, r"lacks tensor layers\.", None),
    ("a tensor of the wrong shape", edit_tensors("emulator.safetensors", _transpose_one), EVAL, r"has shape", None),
    ("tensors of the wrong dtype", edit_tensors("adapter.safetensors", _half), EVAL,
     r"has dtype torch.float16, the model expects torch.float32", None),
    ("a corrupt config", lambda root: replace_file(root / "bundle", "config.json", b"{oops"), EVAL,
     r"missing or corrupt config", None),
    ("an adapter for another model", None, [*EVAL, "--adapter", "other_adapter.safetensors"],
     r"made for another base model", None),
    ("plugging in a file that is not an adapter", None,
     ["plugin", "model", "bundle/emulator.safetensors", "--out", "plugged"], r"not an offsite adapter", "plugged"),
    ("an empty JSONL", write("empty.jsonl", b"\n\n"), ["eval", "model", "--tasks", "empty.jsonl"],
     r"data file is empty", None),
    ("a malformed JSONL", write("bad.jsonl", b'{"prompt": "a", "choices": ["b"]\n'),
     ["eval", "model", "--tasks", "bad.jsonl"], r"bad.jsonl:1: not valid JSON", None),
    ("a JSONL that is not UTF-8", write("latin.jsonl", '{"prompt": "café", "choices": ["a"], "gold": 0}\n'.encode("latin-1")),
     ["eval", "model", "--tasks", "latin.jsonl"], r"latin.jsonl is not UTF-8 text", None),
    ("a JSONL with a gold of the wrong type", write("gold.jsonl", b'{"prompt": "a", "choices": ["b"], "gold": "0"}\n'),
     ["eval", "model", "--tasks", "gold.jsonl"], r"gold must be the integer index", None),
    ("an unknown task", None, ["eval", "model", "--tasks", "no_such_task"], r"unknown task 'no_such_task'", None),
    ("an unknown split", None, ["eval", "model", "--tasks", "arc_easy", "--split", "no_such_split"],
     r"task arc_easy has no split 'no_such_split'; it has: ", None),
    ("a negative adapter layer", None, ["emulate", "model", "--strategy", "uniform", "--keep", "2",
                                        "--adapter-layers=-1,5", "--out", "new"], r"adapter layer -1 is out of range", None),
    ("an adapter layer out of range", None, ["emulate", "model", "--strategy", "uniform", "--keep", "2",
                                             "--adapter-layers", "0,99", "--out", "new"], r"adapter layer 99 is out of range",
     None),
    ("a negative keep", None, [*EMULATE, "--keep", "-1", "--out", "new"], r"--keep -1 is not possible", None),
    ("a keep out of range", None, [*EMULATE, "--keep", "99", "--out", "new"], r"--keep 99 is not possible", None),
    ("a negative limit", None, ["eval", "model", "--tasks", "task.jsonl", "--limit", "-3"], r"--limit must be at least 1, got -3", None),
    ("a checkpoint state that is not an object", write("run/checkpoint/state.json", b"[1, 2]"), FINETUNE,
     r"checkpoint state run/checkpoint/state.json is not one offsite wrote: it lacks \(a JSON object\)", None),
    ("a landscape point whose manifest is a list", write("lrun/manifest.json", b"[]"),
     ["landscape", "model", "--points", "model,lrun", "--task", "task.jsonl", "--out", "new"],
     r"run manifest lrun/manifest.json is not one offsite wrote", None),
    ("a metrics line cut short in the middle", metrics_line_cut_mid_file, FINETUNE,
     r"metrics log run/metrics.jsonl, line 1, is not JSON", None),
    ("a similarity file for another model", similarity_with(_set("cka", [[1.0] * 4] * 4)),
     [*EMULATE[:3], "crash", *EMULATE[4:], "--similarity", "similarity.json", "--out", "new"],
     r"cka has shape \(4, 4\), expected \(6, 6\)", None),
    ("a similarity file with NaN", similarity_with(lambda d: d["cka"][2].__setitem__(3, float("nan"))),
     [*EMULATE[:3], "crash", *EMULATE[4:], "--similarity", "similarity.json", "--out", "new"], r"NaN", None),
    ("a missing bundle", None, ["export", "no_bundle", "--out", "new"], r"bundle not found: no_bundle is not a directory", None),
    ("an eval output over a user's file", write("results.json", b"mine"), [*EVAL, "--out", "results.json"],
     r"refusing to write over results.json: the file exists, .* add --force to replace it", None),
    ("records over the task file", None, [*EVAL, "--records", "task.jsonl"], r"it is the input task.jsonl", None),
    ("records over a task file in a list", None, ["eval", "bundle", "--tasks", "arc_easy,task.jsonl", "--records",
                                                  "task.jsonl"], r"it is the input task.jsonl", None),
    ("records and output at one path", None, [*EVAL, "--out", "r.json", "--records", "r.json"],
     r"refusing to write to r.json: it is the input r.json", None),
    ("a merge weight that is not a number", None, ["merge", "run", "run", "--weights", "nan,1", "--out", "m"],
     r"--weights must be finite, non-negative and not all zero", None),
    ("a LoRA of rank 0", None, [*FINETUNE[:4], "--out", "new", "--lora", "0"], r"lora.rank must be at least 1, got 0",
     None),
    ("a landscape stopped before it starts", None, ["landscape", "model", "--points", "model,run", "--task", "task.jsonl",
                                                     "--stop-after", "0", "--out", "new"],
     r"--stop-after must be at least 1, got 0", None),
    ("an unknown option", None, ["eval", "model", "--no-such-option"], r"unrecognized arguments: --no-such-option",
     None),
]


@pytest.mark.parametrize("name, setup, argv, message, fresh", CASES, ids=[case[0] for case in CASES])
def test_bad_input_ends_in_one_line_and_touches_nothing(template, tmp_path, monkeypatch, capsys, name, setup, argv,
                                                        message, fresh):
    world = tmp_path / "world"
    shutil.copytree(template, world, symlinks=True)
    if setup is not None:
        setup(world)
    monkeypatch.chdir(world)
    before = tree(world.parent)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("offsite"), err
    assert "Traceback" not in err + out
    assert re.search(message, lines[0]), lines[0]
    after = tree(world.parent)
    if fresh is not None:
        after = {path: digest for path, digest in after.items() if not path.startswith(f"world/{fresh}")}
    assert after == before


def test_force_writes_beside_the_users_files_and_never_over_them(template, tmp_path, monkeypatch, capsys):
    world = tmp_path / "world"
    shutil.copytree(template, world)
    _existing_dir(world)
    (world / "existing" / "config.json").write_text("the user's config")
    monkeypatch.chdir(world)
    before = tree(world)
    assert main(["export", "bundle", "--out", "existing", "--force"]) == 2
    assert "existing/config.json: it exists and offsite did not write it" in capsys.readouterr().err
    assert tree(world) == before
    (world / "existing" / "config.json").unlink()
    assert main(["export", "bundle", "--out", "existing", "--force"]) == 0
    assert main(["export", "bundle", "--out", "existing", "--force"]) == 0  # its own files it may replace
    assert (world / "existing" / "precious.txt").read_text() == "the user's"
    assert (world / "existing" / "config.json").is_file() and (world / "existing" / "model.safetensors").is_file()
    assert not [p for p in world.rglob("*.tmp")]
    # A fine-tuning run forced into a directory holding a metrics log of the user's leaves the log alone.
    (world / "mine").mkdir()
    (world / "mine" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    assert main([*FINETUNE[:4], "--out", "mine", *FINETUNE[6:], "--force"]) == 2
    assert "mine/metrics.jsonl: it exists and offsite did not write it" in capsys.readouterr().err
    assert (world / "mine" / "metrics.jsonl").read_text() == '{"step": 1, "loss": 2.0}\n'


def test_debug_shows_the_traceback_and_a_bug_says_so(template, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(template)
    assert main(["--debug", "export", "no_bundle", "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("offsite: error: bundle not found")
    monkeypatch.setenv("OFFSITE_DEBUG", "1")
    assert main(["export", "no_bundle", "--out", str(tmp_path / "new")]) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.delenv("OFFSITE_DEBUG")

    def broken(path, out):
        raise ZeroDivisionError("an internal mistake")

    monkeypatch.setattr("offsite.cli.emulate.export_bundle", broken)
    assert main(["export", "bundle", "--out", str(tmp_path / "new")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: an internal mistake" in err
    assert "this is a bug in offsite" in err.strip().splitlines()[-1]
