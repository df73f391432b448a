"""The utility benchmarks of the paper's Figure 4 (issue 17): MMMU (validation split) and LLaVA-Bench (in the wild).

Each lands in ``<utility.root>/<name>/`` with a ``manifest.json``, like MLLMU-Bench:

- ``source: hub``: downloaded on the submitting node at the configured revision by MLLMU-Bench's own download code
  (data/fetch.py ``download_repo``: resolve the revision and record it, warn when unpinned, list the tree, fetch
  only the parquet files of the split the task reads, check size and sha256 against the Hub, move into place only
  when all check out);
- ``source: synthetic``: a small twin in the exact column schema (below), generated from a seed, so that the demo
  and the tests run the whole path offline. A tiny model scores at chance on it; that is all it is for.

Columns, as the Hub copies hold them:
- MMMU (``MMMU/MMMU``, one folder per subject, ``validation-*.parquet``): ``id, question, options`` (a *string*
  holding a Python list), ``explanation, image_1 .. image_7`` (``{bytes, path}`` or null), ``img_type, answer,
  topic_difficulty, question_type, subfield``;
- LLaVA-Bench (``lmms-lab/llava-bench-in-the-wild``, ``data/train-*.parquet``): ``question_id, question, image,
  caption, gpt_answer, category, image_id``.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..eval.mmmu import DISCIPLINES
from ..io import atomic_dir
from . import manifest
from .schema import _undecodable
from .synthetic import render_face

log = logging.getLogger(__name__)

MMMU_SUBJECTS = tuple(s for subjects in DISCIPLINES.values() for s in subjects)
_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
MMMU_SCHEMA = pa.schema([("id", pa.string()), ("question", pa.string()), ("options", pa.string()),
                         ("explanation", pa.string()), *((f"image_{k}", _IMAGE) for k in range(1, 8)),
                         ("img_type", pa.string()), ("answer", pa.string()), ("topic_difficulty", pa.string()),
                         ("question_type", pa.string()), ("subfield", pa.string())])
LLAVA_BENCH_SCHEMA = pa.schema([("question_id", pa.int64()), ("question", pa.string()), ("image", _IMAGE),
                                ("caption", pa.string()), ("gpt_answer", pa.string()), ("category", pa.string()),
                                ("image_id", pa.string())])


@dataclass(frozen=True)
class UtilityBenchmark:
    name: str  # the config key, the split name in results, and the folder under utility.root
    folders: tuple[str, ...]  # the repository's top-level folders holding the split's parquet files
    schema: pa.Schema
    id_column: str
    image_columns: tuple[str, ...]


BENCHMARKS = {
    "mmmu": UtilityBenchmark("mmmu", MMMU_SUBJECTS, MMMU_SCHEMA, "id", tuple(f"image_{k}" for k in range(1, 8))),
    "llava_bench": UtilityBenchmark("llava_bench", ("data",), LLAVA_BENCH_SCHEMA, "question_id", ("image",)),
}


def benchmark(name: str) -> UtilityBenchmark:
    if name not in BENCHMARKS:
        raise KeyError(f"config: study.utility names unknown benchmark '{name}'; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


def hub_repo(name: str, cfg: dict) -> dict:
    """The download request of ``utility.<name>`` in data/fetch.py's terms."""
    split = cfg.get("split", "train")
    return {"key": name, "config_key": f"utility.{name}.revision", "repo_id": cfg["repo_id"],
            "repo_type": "dataset", "revision": cfg.get("revision"), "folders": list(benchmark(name).folders),
            "file_prefix": f"{split}-", "subdir": "files"}


def prepare(name: str, cfg: dict, source: str, out: str | Path, seed: int = 0) -> dict:
    """Download ``utility.<name>`` (``source: hub``) or generate its twin into ``out``, with a manifest."""
    out = Path(out)
    if source == "synthetic":
        with atomic_dir(out) as tmp:
            summary = SYNTHETIC[name](tmp / "files", seed)
            manifest.write(tmp, {"synthetic": {"benchmark": name, "seed": seed, **summary}})
    else:
        from huggingface_hub import HfApi

        from .fetch import download_repo

        api = HfApi(endpoint=cfg.get("endpoint") or os.environ.get("HF_ENDPOINT") or None)
        staging = out.parent / f".{out.name}.download"
        source_record = download_repo(api, hub_repo(name, cfg), staging)
        with atomic_dir(out) as tmp:
            (staging / "files").rename(tmp / "files")
            manifest.write(tmp, {name: source_record})
        shutil.rmtree(staging, ignore_errors=True)
    return manifest.load(out / manifest.MANIFEST)


def read_rows(root: str | Path, name: str) -> list[dict]:
    """Every row of a prepared benchmark (checked against its manifest), in file order; a missing column or an
    image that does not decode is one error naming the file, the row and the field."""
    spec, root = benchmark(name), Path(root)
    manifest.verify(root)
    files = sorted((root / "files").rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}/files: no parquet files of {name} (run the prepare_utility rule)")
    rows = []
    for f in files:
        table = pq.read_table(f)
        missing = [c for c in spec.schema.names if c not in table.column_names]
        if missing:
            raise ValueError(f"{f}: {name} rows have no column(s) {', '.join(missing)}")
        for row in table.to_pylist():
            for column in spec.image_columns:
                image = row.get(column)
                if image is None:
                    continue
                data = image.get("bytes") if isinstance(image, dict) else None
                problem = "no image bytes" if not data else _undecodable(data)
                if problem:
                    raise ValueError(f"{f}: row {row.get(spec.id_column)}: field '{column}' is not a decodable "
                                     f"image ({problem})")
                row[column] = data
            rows.append(row)
    return rows


# -- synthetic twins -----------------------------------------------------------------------------------------

def _image(np_rng: np.random.Generator, size: int = 32) -> bytes:
    return render_face(np_rng.integers(0, 256, size=(4, 4, 3)), size)


def _write(folder: Path, name: str, rows: list[dict], schema: pa.Schema) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / name, row_group_size=100)


def synthetic_mmmu(root: Path, seed: int) -> dict:
    """One validation question per subject (30): every fifth open, the others four-option multiple choice;
    every fourth multiple-choice question shows a second image inside an option, as MMMU's do."""
    rng, np_rng = random.Random(f"{seed}:mmmu"), np.random.default_rng([seed, 17])
    for n, subject in enumerate(MMMU_SUBJECTS):
        row = {"id": f"validation_{subject}_1", "explanation": "", "img_type": "['Diagrams']",
               "topic_difficulty": rng.choice(["Easy", "Medium", "Hard"]), "subfield": subject.replace("_", " "),
               **{f"image_{k}": None for k in range(1, 8)}}
        row["image_1"] = {"bytes": _image(np_rng), "path": None}
        if n % 5 == 4:
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            row.update(question=f"<image 1> The figure shows {a} rows of {b} dots. How many dots are there?",
                       options="[]", answer=str(a * b), question_type="open")
        else:
            options = [f"option {w}" for w in rng.sample(["red", "green", "blue", "amber", "violet", "grey"], 4)]
            if n % 4 == 1:
                row["image_2"] = {"bytes": _image(np_rng), "path": None}
                options[2] = "<image 2>"
            row.update(question=f"Which choice matches <image 1> in {subject.replace('_', ' ')}?",
                       options=repr(options), answer=rng.choice("ABCD"), question_type="multiple-choice")
        _write(root / subject, "validation-00000-of-00001.parquet", [row], MMMU_SCHEMA)
    return {"questions": len(MMMU_SUBJECTS)}


def synthetic_llava_bench(root: Path, seed: int) -> dict:
    """Four images with a caption each, one question per category on each (12 questions)."""
    rng, np_rng = random.Random(f"{seed}:llava_bench"), np.random.default_rng([seed, 18])
    rows, qid = [], 0
    for k in range(4):
        colour = rng.choice(["red", "green", "blue", "amber"])
        image = {"bytes": _image(np_rng), "path": f"{k:03d}.jpg"}
        caption = f"Picture {k + 1}: a grid of coloured squares, mostly {colour}, on a plain background."
        for category, question, answer in (
                ("conv", "What colour dominates the picture?", f"The picture is mostly {colour}."),
                ("detail", "Describe the image in detail.", f"The image shows a grid of squares, mostly {colour}."),
                ("complex", "What could this pattern be used for?", "It could be a colour calibration chart.")):
            rows.append({"question_id": qid, "question": question, "image": image, "caption": caption,
                         "gpt_answer": answer, "category": category, "image_id": f"{k:03d}"})
            qid += 1
    _write(root / "data", "train-00000-of-00001.parquet", rows, LLAVA_BENCH_SCHEMA)
    return {"questions": len(rows)}


SYNTHETIC = {"mmmu": synthetic_mmmu, "llava_bench": synthetic_llava_bench}
