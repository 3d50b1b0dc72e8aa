"""Where offsite keeps its caches, and how it writes files: never over a user's data, never half-written.

Every output goes through this module. A file or directory is written under a temporary sibling
(``.NAME.HOST-PID.XXXXXXXX.tmp``), flushed to disk, then renamed into place. A directory offsite writes gets a record
file (:data:`RECORD`): a directory written whole lists its entries; a directory a resumable command fills bit by
bit (:func:`claim_directory`) is offsite's except for the entries it found there. Only a directory whose entries
offsite all wrote (or an empty one) is ever replaced, as rename-old-aside, rename-new-in, delete-old, and no
file is ever written over an entry offsite did not write. Any other non-empty directory is refused;
with ``force`` (or within :func:`forcing`, which the CLI's ``--force`` sets) the new entries are added beside its
files, and a file offsite did not write is never touched.
An existing file is replaced only where a directory record says offsite wrote it, or, outside any recorded
directory, with ``force`` (the user named that very file). The current directory, a directory holding it, and
the command's own inputs (or folders holding them) are always refused. Temporaries left by a killed process are
removed by the next write next to them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import OffsiteError

RECORD = ".offsite.json"
RECORD_FORMAT = "offsite-output"
# A temporary names the host and process writing it (.NAME.HOST-PID.XXXXXXXX.tmp), so that a sweep removes only
# those of dead processes on this machine: several machines may write into one shared results directory.
_TEMPORARY = re.compile(r"^\..+\.(?:([A-Za-z0-9]*)-)?(\d+)\.[a-z0-9_]{8}\.tmp$")
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())
_FORCE: ContextVar[bool] = ContextVar("offsite_force", default=False)


def cache_dir() -> Path:
    """The root of every cache (converted models, parsed task data); moved by ``OFFSITE_CACHE``."""
    root = os.environ.get("OFFSITE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "offsite")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def forcing(enabled: bool = True) -> Iterator[None]:
    """Within the block, every output is written as if given ``force`` (the CLI's ``--force`` sets this)."""
    token = _FORCE.set(enabled)
    try:
        yield
    finally:
        _FORCE.reset(token)


def _record(directory: Path) -> dict[str, Any] | None:
    """The record of ``directory``: ``entries`` (a list, or ``"*"``: all but ``foreign``) and ``foreign``."""
    try:
        record = json.loads((directory / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return None
    entries, foreign = record.get("entries"), record.get("foreign", [])
    if not (entries == "*" or isinstance(entries, list)) or not isinstance(foreign, list):
        return None
    return {"entries": entries if entries == "*" else {str(e) for e in entries}, "foreign": {str(e) for e in foreign}}


def _present_entries(directory: Path) -> set[str]:
    """The entries of ``directory`` other than its record and offsite's temporaries."""
    return {p.name for p in directory.iterdir() if p.name != RECORD and not _TEMPORARY.match(p.name)}


def _foreign_entries(directory: Path) -> set[str]:
    """The entries of ``directory`` that offsite did not write."""
    present, record = _present_entries(directory), _record(directory)
    if record is None:
        return present
    if record["entries"] == "*":
        return present & record["foreign"]
    return present - record["entries"]


def written_by_offsite(directory: str | os.PathLike) -> bool:
    """Whether every entry of ``directory`` was written by offsite (an empty directory counts: nothing to lose)."""
    directory = Path(directory)
    return directory.is_dir() and not _foreign_entries(directory)


def _not_ours(path: Path) -> OffsiteError:
    return OffsiteError(f"refusing to write over {path}: it exists and offsite did not write it "
                        "(--force never replaces such a file); choose another --out")


def _recorded_owner(target: Path) -> tuple[Path, bool] | None:
    """The entry of the nearest recorded directory above ``target`` that holds it, and whether offsite wrote that
    entry; None when no directory above ``target`` has a record."""
    for directory in target.parents:
        if (directory / RECORD).is_file():
            entry = target.relative_to(directory).parts[0]
            return directory / entry, entry not in _foreign_entries(directory)
    return None


def refuse_foreign(target: str | os.PathLike) -> None:
    """Refuse to write or delete ``target`` when it is, or lies inside, an entry offsite did not write of a recorded
    directory (possible only in a directory written with ``force``)."""
    owner = _recorded_owner(Path(target))
    if owner is not None and not owner[1]:
        raise _not_ours(owner[0])


def _overlap(target: Path, source: Path) -> str | None:
    """How ``target`` overlaps the input ``source`` (both resolved), or None."""
    if target == source:
        return "is the input"
    if target in source.parents:
        return "holds the input"
    if source in target.parents:
        return "is inside the input"
    return None


def check_output(
    target: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), force: bool = False, directory: bool = True
) -> Path:
    """Refuse, in one line, an output path that would destroy data; return it as a :class:`Path`.

    Refused always: the current directory or one holding it, a symbolic link, an input of the command (or a folder
    holding it, or a path inside it), and a file where a directory goes or the reverse. Refused unless ``force``:
    a non-empty directory with entries that offsite did not write.
    """
    force = force or _FORCE.get()
    target = Path(target)
    resolved, cwd = target.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OffsiteError(f"refusing to write to {target}: it is the current directory or holds it; "
                           "name a new directory (--force does not change this)")
    for source in inputs:
        overlap = _overlap(resolved, Path(source).resolve())
        if overlap:
            raise OffsiteError(f"refusing to write to {target}: it {overlap} {source} "
                               "(--force does not change this)")
    if target.is_symlink():
        raise OffsiteError(f"refusing to write to {target}: it is a symbolic link; name a real path "
                           "(--force does not change this)")
    if target.exists() and directory and not target.is_dir():
        raise OffsiteError(f"refusing to write to {target}: it is a file and a directory is to be written; "
                           "name a new directory (--force never replaces a file)")
    if target.is_dir() and not directory:
        raise OffsiteError(f"refusing to write to {target}: it is a directory and a file is to be written "
                           "(--force does not change this)")
    if target.is_dir() and not force and not written_by_offsite(target):
        raise OffsiteError(f"refusing to write to {target}: it is a non-empty directory that offsite did not write; "
                           "name a new one, or add --force to write beside its files (offsite never deletes them)")
    if target.is_file():
        refuse_foreign(target)
        if not force and _recorded_owner(target) is None:
            raise OffsiteError(f"refusing to write over {target}: the file exists, and outside its own directories "
                               "offsite cannot tell who wrote it; name a new one, or add --force to replace it")
    return target


def _fsync_tree(path: Path) -> None:
    """Flush a file offsite staged, or a staged directory with everything in it, to disk."""
    paths = [path] if not path.is_dir() else [Path(root) / name for root, dirs, files in os.walk(path)
                                               for name in [*files, *dirs]] + [path]
    for item in paths:
        if not item.is_symlink():
            _fsync(item)


def _fsync(path: Path) -> None:
    """Flush one file, or one directory's own entries (a rename in it), to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError:  # some systems cannot flush a directory; its entries are flushed already
        pass
    finally:
        os.close(descriptor)


def _write_record(directory: Path, entries: Iterable[str] | str, foreign: Iterable[str] = ()) -> None:
    record = {"format": RECORD_FORMAT, "written_by": "offsite",
              "entries": entries if entries == "*" else sorted(set(entries)), "foreign": sorted(set(foreign))}
    tmp = directory / f"{_temporary_prefix(RECORD)}record00.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, directory / RECORD)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _temporary_prefix(name: str) -> str:
    return f".{name}.{_HOST}-{os.getpid()}."


def _sweep_temporaries(directory: Path) -> None:
    """Remove the temporaries that killed offsite processes of this machine left in ``directory``."""
    for child in directory.iterdir():
        match = _TEMPORARY.match(child.name)
        if not match or match.group(1) not in (None, _HOST) or _alive(int(match.group(2))):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _replace_entry(new: Path, target: Path, aside: Path) -> None:
    """Put ``new`` at ``target``: an existing directory is renamed to ``aside`` first (deleted by the caller)."""
    if target.is_dir() and not target.is_symlink():
        os.rename(target, aside)
    os.replace(new, target)


def _commit_directory(staged: Path, target: Path, force: bool, work: Path) -> None:
    entries = {p.name for p in staged.iterdir()}
    if not target.exists() or written_by_offsite(target):
        _write_record(staged, entries)
        _fsync_tree(staged)
        _replace_entry(staged, target, work / ".replaced")
        return
    check_output(target, force=force)  # a non-empty directory offsite did not write: only with force
    foreign = _foreign_entries(target)
    clashes = sorted(entries & foreign)
    if clashes:
        raise _not_ours(target / clashes[0])
    _fsync_tree(staged)
    for name in sorted(entries):
        _replace_entry(staged / name, target / name, work / f".replaced-{name}")
    _write_record(target, _present_entries(target) - foreign, foreign)


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike, force: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> Iterator[Path]:
    """Yield a temporary path to write a file or a directory into; on success it replaces ``target`` safely.

    A directory written here is recorded as offsite's. On an exception nothing changes at ``target``. See the
    module's docstring (and :func:`check_output`) for what is refused and what ``force`` allows.
    """
    target = Path(target)
    check_output(target, inputs, force, directory=not target.is_file())
    refuse_foreign(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_temporaries(target.parent)
    work = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target.name), suffix=".tmp", dir=target.parent))
    staged = work / target.name
    try:
        yield staged
        if staged.is_dir():
            _commit_directory(staged, target, force, work)
        else:
            check_output(target, force=force, directory=False)
            _fsync(staged)
            os.replace(staged, target)
        _fsync(target.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def claim_directory(
    target: str | os.PathLike, force: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Make ``target`` a directory that a long, resumable command fills bit by bit, and return it: everything
    written into it from now on is offsite's.

    A directory offsite wrote is kept as it is (its command resumes there); any other non-empty one is refused
    unless ``force``, and then its entries are recorded as not offsite's: nothing is ever written over them.
    """
    target = check_output(target, inputs, force)
    refuse_foreign(target)
    target.mkdir(parents=True, exist_ok=True)
    _sweep_temporaries(target)
    record = _record(target)
    if record is None or record["entries"] != "*":
        _write_record(target, "*", _foreign_entries(target))
    return target


def remove_output(path: str | os.PathLike) -> None:
    """Delete a directory that offsite wrote (renamed aside first, so no half-deleted one stays under its name)."""
    path = Path(path)
    if not path.exists():
        return
    if not written_by_offsite(path):
        raise OffsiteError(f"refusing to delete {path}: it holds files that offsite did not write")
    aside = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path.name), suffix=".tmp", dir=path.parent))
    os.rename(path, aside / path.name)
    shutil.rmtree(aside)


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex, read in blocks (weights files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "file", keys: Iterable[str] | None = None) -> Any:
    """Read a JSON file, turning a missing or corrupt file into an :class:`OffsiteError`; with ``keys``, it must
    be a JSON object holding each of them."""
    path = Path(path)
    if not path.is_file():
        raise OffsiteError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OffsiteError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise OffsiteError(f"{what} {path} is not valid JSON (not UTF-8 text)") from None
    if keys is not None:
        missing = [key for key in keys if key not in data] if isinstance(data, dict) else ["(a JSON object)"]
        if missing:
            raise OffsiteError(f"{what} {path} is not one offsite wrote: it lacks {missing[0]}")
    return data
