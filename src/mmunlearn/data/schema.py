"""MLLMU-Bench's on-disk schema, one typed in-memory representation, and validation on load.

The same reader loads the real Hugging Face parquet files and the synthetic twin; nothing past the generator
knows which one it is reading. Column names and nested structure follow ``shared/spec`` §1.2:

- benchmark folders (Full_Set, forget_*, retain_*, Retain_Set): ``image`` {bytes, path}, ``ID``,
  ``Classification_Task`` {Image_Textual_Questions, Pure_Text_Questions: [{Question, Options{A..D},
  Correct_Answer}]}, ``Generation_Task`` and ``Mask_Task``: [{Question, Ground_Truth, Type}];
- ``Test_Set``: the same, with ``images`` (a list of image structs) instead of ``image``;
- training folders (ft_Data, baseline_train_split/*): ``image`` and ``metadata`` (a JSON string holding a list
  of {Question, Answer}).

A column is required only where the code reads it from that folder; extra columns are fine. ``biography`` and
a training row's ``ID`` are read where present (a cross-check of the name, the join to Full_Set) and never
required: whether the real Test_Set and baseline files carry them is UNCONFIRMED.

Fatal problems (the study would silently measure something else): a missing column, a wrong nested type, an
undecodable image, a duplicated ID. Item-level problems (a ``Correct_Answer`` that is not an option key, a cloze
question without its ``__`` blank, an empty QA pair) skip that one item and are counted in ``LoadReport``.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from . import manifest

log = logging.getLogger(__name__)

IMAGE_TEXT, TEXT = "image_text", "text"
MODALITIES = (IMAGE_TEXT, TEXT)
_TYPE_TO_MODALITY = {"Image_Textual": IMAGE_TEXT, "Pure_Text": TEXT}
CLOZE_BLANK = "__"
BENCH_COLUMNS = ("ID", "Classification_Task", "Generation_Task", "Mask_Task")
TRAIN_COLUMNS = ("image", "metadata")


class DataError(ValueError):
    """A problem in an input file, naming the file, the row/ID and the field."""

    def __init__(self, file: str | Path, field: str, message: str, row: int | None = None,
                 profile_id: str | None = None):
        where = f"{file}"
        if row is not None:
            where += f", row {row}"
        if profile_id is not None:
            where += f" (ID {profile_id})"
        super().__init__(f"{where}, field '{field}': {message}")
        self.file, self.field, self.row, self.profile_id = str(file), field, row, profile_id


@dataclass(frozen=True)
class MCQuestion:
    question: str
    options: dict[str, str]
    answer: str  # option key, e.g. "B"


@dataclass(frozen=True)
class OpenQuestion:
    question: str
    ground_truth: str
    modality: str  # IMAGE_TEXT or TEXT


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


@dataclass
class Profile:
    """One person (fictitious or celebrity) with every question the study asks about them."""

    id: str
    images: list[bytes]
    biography: str = ""
    name: str | None = None  # for the text-only variant: from the validated facts (data/names.py)
    origin: tuple[str, int] = ("", -1)  # (file, row) it was read from, for error messages
    classification: dict[str, list[MCQuestion]] = field(default_factory=lambda: {m: [] for m in MODALITIES})
    generation: list[OpenQuestion] = field(default_factory=list)
    cloze: list[OpenQuestion] = field(default_factory=list)
    qa: list[QAPair] = field(default_factory=list)

    @property
    def image(self) -> bytes:
        return self.images[0]

    def text_questions(self) -> list[str]:
        """Every question asked without the image: they name the person (data/names.py)."""
        return ([q.question for q in self.classification[TEXT]]
                + [q.question for q in self.generation + self.cloze if q.modality == TEXT])


@dataclass
class LoadReport:
    """What reading one file found: its rows, and every item skipped, with where and why."""

    file: str
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    items: list[dict] = field(default_factory=list)

    def skip(self, reason: str, row: int, pid: str | None, field_name: str) -> None:
        self.skipped[reason] += 1
        self.items.append({"file": self.file, "row": row, "id": pid, "field": field_name, "reason": reason})
        log.warning("%s: skipped row %d ID %s %s (%s)", self.file, row, pid, field_name, reason)


def decode_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def _undecodable(data: bytes) -> str | None:
    """Why ``data`` is not a decodable image, or None. Decoding fully (``load``) catches truncated data."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception as exc:  # PIL raises many types for corrupt data
        return str(exc) or type(exc).__name__
    return None


def _check_images(pending: list[tuple]) -> None:
    """Decode every image of one file, ``pending`` = [(bytes, file, row, ID, field)], on threads (Pillow's
    decoders release the GIL); the first undecodable one in row order is the error."""
    if not pending:
        return
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for (_, file, row, pid, field_name), problem in zip(pending, pool.map(_undecodable, [p[0] for p in pending])):
            if problem is not None:
                raise DataError(file, field_name, f"image bytes cannot be decoded ({problem})", row, pid)


def _image_bytes(value, file, row, pid, field_name, pending: list | None) -> bytes:
    """The image's bytes; with ``pending`` (the validation pass) queued for decoding by ``_check_images``."""
    if not isinstance(value, dict) or not isinstance(value.get("bytes"), (bytes, bytearray)):
        raise DataError(file, field_name, "expected an image struct {bytes, path} with bytes", row, pid)
    if pending is not None:
        pending.append((value["bytes"], file, row, pid, field_name))
    return bytes(value["bytes"])


def _expect(cond: bool, file, field_name, message, row, pid) -> None:
    if not cond:
        raise DataError(file, field_name, message, row, pid)


def parquet_files(folder: str | Path) -> list[Path]:
    """All parquet shards of one dataset folder, in shard order (Test_Set has two), checked against the data
    manifest when the folder lies below one (``manifest.check_folder``)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise DataError(folder, "*.parquet", "no parquet file in this folder")
    manifest.check_folder(folder)
    return files


def _read_rows(file: Path, required: tuple[str, ...], image_columns: tuple[str, ...] = ("image",)):
    """Check the file's columns, then return the image column's name and an iterator over (row index, row),
    decoded a batch at a time so that a large shard (Test_Set: ~337 MB) is not held in memory twice."""
    try:
        pf = pq.ParquetFile(file)
        names = pf.schema_arrow.names
    except Exception as exc:
        raise DataError(file, "<file>", f"not a readable parquet file ({exc})") from None
    missing = [c for c in required if c not in names]
    if missing:
        raise DataError(file, missing[0], f"missing column (file has {names})")
    image_col = next((c for c in image_columns if c in names), None)
    if image_col is None:
        raise DataError(file, image_columns[0], f"missing column (need one of {list(image_columns)}; file has {names})")

    def rows():
        r = 0
        try:
            for batch in pf.iter_batches(batch_size=32):
                for row in batch.to_pylist():
                    yield r, row
                    r += 1
        except (OSError, ValueError) as exc:  # pyarrow's errors on a damaged row group
            raise DataError(file, "<file>", f"unreadable after row {r} ({exc})") from None

    return image_col, rows()


def _parse_mc(items, file, row, pid, field_name, report: LoadReport) -> list[MCQuestion]:
    _expect(isinstance(items, list), file, field_name, "expected a list of questions", row, pid)
    out = []
    for i, q in enumerate(items):
        where = f"{field_name}[{i}]"
        _expect(isinstance(q, dict) and isinstance(q.get("Question"), str)
                and isinstance(q.get("Options"), dict) and isinstance(q.get("Correct_Answer"), str),
                file, where, "expected {Question: str, Options: {A..D: str}, Correct_Answer: str}", row, pid)
        options = {k: v for k, v in q["Options"].items() if v is not None}
        if q["Correct_Answer"].strip() not in options:
            report.skip("Correct_Answer is not an option key", row, pid, where)
            continue
        out.append(MCQuestion(q["Question"], options, q["Correct_Answer"].strip()))
    return out


def _parse_open(items, file, row, pid, field_name, report: LoadReport, cloze: bool) -> list[OpenQuestion]:
    _expect(isinstance(items, list), file, field_name, "expected a list of questions", row, pid)
    out = []
    for i, q in enumerate(items):
        where = f"{field_name}[{i}]"
        _expect(isinstance(q, dict) and isinstance(q.get("Question"), str)
                and isinstance(q.get("Ground_Truth"), str) and isinstance(q.get("Type"), str),
                file, where, "expected {Question: str, Ground_Truth: str, Type: str}", row, pid)
        if cloze and CLOZE_BLANK not in q["Question"]:
            report.skip("cloze question without its __ blank", row, pid, where)
            continue
        # The original code treats every Type other than "Image_Textual" as text (spec §1.2).
        modality = _TYPE_TO_MODALITY.get(q["Type"], TEXT)
        out.append(OpenQuestion(q["Question"], q["Ground_Truth"], modality))
    return out


def read_benchmark_folder(folder: str | Path, decode_images: bool = False) -> tuple[dict[str, Profile], list[LoadReport]]:
    """Read one benchmark folder (Full_Set, forget_*, retain_*, Test_Set, Retain_Set) into profiles by ID.
    ``decode_images``: decode every image fully (the validation pass); jobs after it read validated data."""
    profiles: dict[str, Profile] = {}
    reports = []
    for file in parquet_files(folder):
        report = LoadReport(str(file))
        # Test_Set rows carry a list ``images`` (the original falls back to ``image``); the others one ``image``
        # (spec §1.2). The first column named is the one a missing-column error names.
        image_columns = ("images", "image") if Path(folder).name == "Test_Set" else ("image", "images")
        image_col, rows = _read_rows(file, BENCH_COLUMNS, image_columns)
        pending = [] if decode_images else None
        for r, row in rows:
            _expect(isinstance(row["ID"], (str, int)) and str(row["ID"]).strip(), file, "ID",
                    f"expected a non-empty string, got {row['ID']!r}", r, None)
            pid = str(row["ID"])
            _expect(pid not in profiles, file, "ID", "duplicated ID", r, pid)
            if image_col == "images":
                _expect(isinstance(row["images"], list) and row["images"], file, "images",
                        "expected a non-empty list of image structs", r, pid)
                images = [_image_bytes(v, file, r, pid, f"images[{i}]", pending)
                          for i, v in enumerate(row["images"])]
            else:
                images = [_image_bytes(row["image"], file, r, pid, "image", pending)]
            ct = row["Classification_Task"]
            _expect(isinstance(ct, dict), file, "Classification_Task", "expected a struct", r, pid)
            classification = {
                IMAGE_TEXT: _parse_mc(ct.get("Image_Textual_Questions"), file, r, pid,
                                      "Classification_Task.Image_Textual_Questions", report),
                TEXT: _parse_mc(ct.get("Pure_Text_Questions"), file, r, pid,
                                "Classification_Task.Pure_Text_Questions", report),
            }
            profiles[pid] = Profile(
                id=pid, images=images, biography=str(row.get("biography") or ""), origin=(str(file), r),
                classification=classification,
                generation=_parse_open(row["Generation_Task"], file, r, pid, "Generation_Task", report, False),
                cloze=_parse_open(row["Mask_Task"], file, r, pid, "Mask_Task", report, True),
            )
            report.rows += 1
        _check_images(pending)
        reports.append(report)
    return profiles, reports


def read_training_folder(folder: str | Path, decode_images: bool = False) -> tuple[list[Profile], list[LoadReport]]:
    """Read a training folder (ft_Data, baseline_train_split/forget_*, retain_*): image + metadata QA pairs."""
    profiles = []
    reports = []
    for file in parquet_files(folder):
        report = LoadReport(str(file))
        pending = [] if decode_images else None
        for r, row in _read_rows(file, TRAIN_COLUMNS)[1]:
            # ID is UNCONFIRMED for the training files: "" where absent (``sets.identify`` joins by image).
            pid = str(row["ID"]) if row.get("ID") is not None else ""
            where = pid or None
            image = _image_bytes(row["image"], file, r, where, "image", pending)
            _expect(isinstance(row["metadata"], str), file, "metadata", "expected a JSON string", r, where)
            try:
                pairs = json.loads(row["metadata"])
            except json.JSONDecodeError as exc:
                raise DataError(file, "metadata", f"not valid JSON ({exc})", r, where) from None
            _expect(isinstance(pairs, list), file, "metadata", "expected a JSON list of {Question, Answer}", r, where)
            qa = []
            for i, p in enumerate(pairs):
                _expect(isinstance(p, dict), file, f"metadata[{i}]", "expected {Question, Answer}", r, where)
                q, a = str(p.get("Question") or "").strip(), str(p.get("Answer") or "").strip()
                if not q or not a:  # the original drops these too (spec §2.1)
                    report.skip("empty Question or Answer", r, where, f"metadata[{i}]")
                    continue
                qa.append(QAPair(q, a))
            profiles.append(Profile(id=pid, images=[image], biography=str(row.get("biography") or ""), qa=qa,
                                    origin=(str(file), r)))
            report.rows += 1
        _check_images(pending)
        reports.append(report)
    return profiles, reports
