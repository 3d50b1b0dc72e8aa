"""Writing outputs: what may be replaced, what is refused, what --force allows, and what a kill leaves behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from offsite import OffsiteError
from offsite.paths import (
    _HOST,
    RECORD,
    atomic_path,
    check_output,
    claim_directory,
    remove_output,
    sha256_of,
    write_json,
    written_by_offsite,
)


def write_dir(target, files: dict[str, str], force: bool = False) -> None:
    with atomic_path(target, force=force) as tmp:
        tmp.mkdir()
        for name, text in files.items():
            (tmp / name).write_text(text)


def listing(path) -> dict[str, str]:
    return {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_directory_offsite_wrote_is_replaced_whole_and_recorded(tmp_path):
    write_dir(tmp_path / "out", {"a.txt": "1", "b.txt": "2"})
    assert json.loads((tmp_path / "out" / RECORD).read_text())["entries"] == ["a.txt", "b.txt"]
    write_dir(tmp_path / "out", {"c.txt": "3"})
    assert set(listing(tmp_path / "out")) == {"c.txt", RECORD}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left


def test_a_directory_offsite_did_not_write_is_refused_and_force_adds_beside_it(tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    with pytest.raises(OffsiteError, match=r"refusing to write to .*existing: .*did not write.*--force"):
        write_dir(out, {"a.txt": "1"})
    assert listing(out) == {"precious.txt": "mine"}
    write_dir(out, {"a.txt": "1"}, force=True)
    assert listing(out) == {"precious.txt": "mine", "a.txt": "1", RECORD: listing(out)[RECORD]}
    assert not written_by_offsite(out)  # precious.txt is not offsite's: the next write needs --force again
    with pytest.raises(OffsiteError, match="--force"):
        write_dir(out, {"a.txt": "2"})
    write_dir(out, {"a.txt": "2"}, force=True)  # a.txt is offsite's, so force may replace it
    assert listing(out)["a.txt"] == "2" and listing(out)["precious.txt"] == "mine"
    with pytest.raises(OffsiteError, match=r"precious.txt: it exists and offsite did not write it"):
        write_dir(out, {"precious.txt": "overwritten"}, force=True)
    assert listing(out)["precious.txt"] == "mine"


@pytest.mark.parametrize("case", ["cwd", "parent", "file", "input", "inside input", "holds input", "link"])
def test_paths_refused_even_with_force(tmp_path, monkeypatch, case):
    work = tmp_path / "work"
    (work / "bundle").mkdir(parents=True)
    (work / "notes.txt").write_text("x")
    (work / "link").symlink_to(work / "bundle")
    monkeypatch.chdir(work)
    target, inputs = {"cwd": (".", []), "parent": ("..", []), "file": ("notes.txt", []),
                      "input": ("bundle", ["bundle"]), "inside input": ("bundle/x", ["bundle"]),
                      "holds input": (str(tmp_path), [str(work / "bundle")]), "link": ("link", [])}[case]
    with pytest.raises(OffsiteError, match="--force"):
        check_output(target, inputs, force=True)


def test_a_file_is_never_written_over_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OffsiteError, match="is a directory"):
        with atomic_path(tmp_path / "d") as tmp:
            tmp.write_text("x")
    assert (tmp_path / "d").is_dir()


def test_claim_keeps_a_directory_offsite_wrote_and_never_writes_over_what_it_found(tmp_path):
    run = claim_directory(tmp_path / "run")
    write_json(run / "log.json", {"step": 1})
    write_dir(run / "state", {"a.txt": "1"})
    assert claim_directory(run) == run and json.loads((run / "log.json").read_text()) == {"step": 1}
    assert written_by_offsite(run)
    other = tmp_path / "other"
    (other / "runs").mkdir(parents=True)
    (other / "log.json").write_text("user's")
    with pytest.raises(OffsiteError, match="--force"):
        claim_directory(other)
    claim_directory(other, force=True)
    with pytest.raises(OffsiteError, match=r"log.json: it exists and offsite did not write it"):
        write_json(other / "log.json", {"step": 1})
    with pytest.raises(OffsiteError, match=r"runs: it exists and offsite did not write it"):
        write_json(other / "runs" / "a" / "scores.json", {})
    write_json(other / "scores.json", {})
    assert (other / "log.json").read_text() == "user's" and not (other / "runs" / "a").exists()
    assert not written_by_offsite(other)
    remove_output(run)
    assert not run.exists()
    with pytest.raises(OffsiteError, match="refusing to delete"):
        remove_output(other)


def test_an_exception_leaves_the_old_output_and_no_temporary(tmp_path):
    write_dir(tmp_path / "out", {"a.txt": "old"})
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out") as tmp:
            tmp.mkdir()
            (tmp / "a.txt").write_text("new")
            raise RuntimeError("killed")
    assert listing(tmp_path / "out")["a.txt"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_temporaries_of_a_killed_process_are_removed_by_the_next_write(tmp_path):
    # A child process stages an output and dies (SIGKILL) before renaming it into place.
    code = ("import os, signal, sys; from offsite.paths import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.mkdir(); (tmp / 'a.txt').write_text('x'); os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], check=False)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert not (tmp_path / "out").exists()
    write_dir(tmp_path / "out", {"a.txt": "y"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # A live process's temporary is left alone.
    live = tmp_path / f".x.{_HOST}-{os.getpid()}.abcdefgh.tmp"
    live.mkdir()
    # Another machine's temporary (sharing the directory) is left alone whatever its process number.
    elsewhere = tmp_path / f".x.{_HOST}x-999999999.abcdefgh.tmp"
    elsewhere.mkdir()
    dead_here = tmp_path / f".x.{_HOST}-999999999.abcdefgh.tmp"
    dead_here.mkdir()
    write_dir(tmp_path / "out", {"a.txt": "z"})
    assert live.exists() and elsewhere.exists() and not dead_here.exists()


def test_sha256_of_reads_a_file_of_several_blocks_whole(tmp_path):
    data = os.urandom((1 << 20) * 2 + 12345)  # two full blocks and a partial one
    (tmp_path / "w.bin").write_bytes(data)
    assert sha256_of(tmp_path / "w.bin") == hashlib.sha256(data).hexdigest()
