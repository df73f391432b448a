"""One validation pass over everything the study reads, on the submitting node, before any training job.

``validate_data`` (a localrule every consumer depends on) runs ``validate``: it checks the manifest (every file's
sha256), reads every folder with every image fully decoded, checks nested types, IDs and joins, and the
consistency of the published splits, then derives the facts the jobs depend on:

- ``training_rows``: whom each training row is about (its Full_Set ID), per training folder, joined by ``ID``
  where the row has one, else by the exact image bytes (the original's training and evaluation rows share the
  profile image; whether the training files carry ``ID`` is UNCONFIRMED);
- ``names``: each fictitious person's name for the text-only variant (``data/names.py``), with
  ``data.names`` overriding; an underivable name is an error naming the profile when the study trains a
  text-only format, a warning otherwise;
- ``corpus_names``: names of the rows of training-format corpora (replay data, the tiny base's pre-training).

A problem that would make the study measure something else is one ``DataError`` naming file, row, ID and field,
raised here, so that no GPU job starts on bad data. Item-level problems skip the item and are listed in the
load report with file, row, ID and field. Jobs after this trust the validated data: they read without decoding
every image again, and take IDs and names from the facts file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from html import escape
from pathlib import Path

from ..io import sha256_file, write_json_atomic, write_text_atomic
from . import manifest, names
from .schema import DataError, Profile, read_benchmark_folder, read_training_folder

log = logging.getLogger(__name__)

BENCH = "MLLMU-Bench"
_RATIO_FOLDER = re.compile(r"(forget|retain)_(\d+)$")


def _digest(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()


class Report:
    """The load report: per folder, its files, rows, skipped items (with where and why) and warnings."""

    def __init__(self):
        self.folders: dict[str, dict] = {}
        self.warnings: list[str] = []

    def add(self, folder: str, reports) -> None:
        entry = self.folders.setdefault(folder, {"files": [], "rows": 0, "skipped": [], "warnings": []})
        for r in reports:
            entry["files"].append(r.file)
            entry["rows"] += r.rows
            entry["skipped"] += r.items

    def warn(self, folder: str, message: str) -> None:
        log.warning("%s: %s", folder, message)
        self.folders.setdefault(folder, {"files": [], "rows": 0, "skipped": [], "warnings": []})
        self.folders[folder]["warnings"].append(message)


def join_rows(rows: list[Profile], reference: set[str], by_image: dict[str, str], folder: Path) -> list[str]:
    """The Full_Set ID of every training row (see module docstring), or an error naming the row."""
    ids = []
    for p in rows:
        pid = p.id if p.id in reference else by_image.get(_digest(p.image)) if not p.id else None
        if pid is None:
            how = (f"its ID '{p.id}' is not in Full_Set" if p.id
                   else "it has no ID and its image matches no Full_Set profile")
            raise DataError(p.origin[0] or folder, "ID" if p.id else "image",
                            f"cannot tell whom this training row is about: {how}", p.origin[1], p.id or None)
        ids.append(pid)
    return ids


def _ratio_folders(root: Path, kind: str) -> dict[int, Path]:
    """Published forget_R / retain_R folders below ``root``, by R."""
    out = {}
    for d in sorted(root.glob(f"{kind}_*")) if root.is_dir() else []:
        m = _RATIO_FOLDER.fullmatch(d.name)
        if d.is_dir() and m:
            out[int(m.group(2))] = d
    return out


def _check_ids(folder: Path, ids: set[str], known: set[str], what: str) -> None:
    unknown = sorted(ids - known)
    if unknown:
        raise DataError(folder, "ID", f"{len(unknown)} IDs are not {what}, e.g. {unknown[:3]}")


def _names(full: dict[str, Profile], override: dict, required: bool, report: Report) -> dict[str, str | None]:
    out = {}
    for pid, p in full.items():
        if pid in override:
            out[pid] = str(override[pid])
            continue
        name = names.name_from_questions(p.text_questions(), p.biography)
        if name is None:
            message = (f"no name can be derived for the text-only variant: none of its {len(p.text_questions())} "
                       f"Pure_Text questions names the person; set data.names: {{'{pid}': <name>}}")
            if required:
                raise DataError(p.origin[0], "Classification_Task.Pure_Text_Questions", message, p.origin[1], pid)
            report.warn(f"{BENCH}/Full_Set", f"ID {pid}: {message}")
        elif p.biography and not names.mentions(p.biography, name):
            report.warn(f"{BENCH}/Full_Set", f"ID {pid}: derived name '{name}' does not occur in its biography")
        out[pid] = name
    return out


def validate(data_root: str | Path, names_override: dict | None = None, names_required: bool = False,
             corpora: tuple[str, ...] = (), require_manifest: bool = True) -> dict:
    """Validate the prepared data below ``data_root`` and return the facts (module docstring) with the load
    report. ``corpora``: training-format folders the config names (replay data, tiny pre-training).
    ``require_manifest``: the folder must be prepare_data's (the workflow); off for a bare folder (tests)."""
    root = Path(data_root)
    bench = root / BENCH
    report = Report()
    has_manifest = (root / manifest.MANIFEST).is_file()
    if require_manifest or has_manifest:
        manifest.verify(root)

    def bench_folder(name: str) -> dict[str, Profile]:
        profiles, reports = read_benchmark_folder(bench / name, decode_images=True)
        report.add(f"{BENCH}/{name}", reports)
        return profiles

    # One folder's images in memory at a time (Test_Set is ~670 MB): keep IDs, image digests and names only.
    full = bench_folder("Full_Set")
    all_ids = set(full)
    names_by_id = _names(full, names_override or {}, names_required, report)
    by_image = {}
    for pid, p in full.items():
        for img in p.images:
            by_image.setdefault(_digest(img), pid)
    del full
    test = set(bench_folder("Test_Set"))
    _check_ids(bench / "Test_Set", test, all_ids, "Full_Set IDs")
    if all_ids - test:
        report.warn(f"{BENCH}/Test_Set", f"{len(all_ids - test)} Full_Set IDs have no Test_Set row, e.g. "
                    f"{sorted(all_ids - test)[:3]}: a forget set holding them cannot be evaluated on Test")
    celebrities = set(bench_folder("Retain_Set"))
    if celebrities & all_ids:
        report.warn(f"{BENCH}/Retain_Set", f"{len(celebrities & all_ids)} celebrity IDs are also Full_Set IDs: "
                    "celebrity few-shot demos would come from Full_Set")

    published = {}
    for ratio, folder in _ratio_folders(bench, "forget").items():
        forget = set(bench_folder(folder.name))
        _check_ids(folder, forget, all_ids, "Full_Set IDs")
        missing_test = sorted(forget - test)
        if missing_test:
            raise DataError(bench / "Test_Set", "ID", f"{len(missing_test)} forget_{ratio} IDs have no Test_Set row, "
                            f"e.g. {missing_test[:3]}")
        retain_folder = bench / f"retain_{100 - ratio}"
        if retain_folder.is_dir():
            retain = set(bench_folder(retain_folder.name))
            if retain != all_ids - forget:
                raise DataError(retain_folder, "ID", f"not the complement of forget_{ratio} in Full_Set "
                                f"({len(retain)} IDs; expected {len(all_ids - forget)})")
        published[ratio] = forget

    training_rows = {}
    folders = [bench / "ft_Data"] + [d for kind in ("forget", "retain")
                                     for d in _ratio_folders(root / "baseline_train_split", kind).values()]
    for folder in folders:
        rel = str(folder.relative_to(root))
        rows, reports = read_training_folder(folder, decode_images=True)
        report.add(rel, reports)
        training_rows[rel] = join_rows(rows, all_ids, by_image, folder)
        m = _RATIO_FOLDER.fullmatch(folder.name)
        if folder.parent.name == "baseline_train_split" and m:
            ratio = int(m.group(2)) if m.group(1) == "forget" else 100 - int(m.group(2))
            if ratio in published:
                expected = published[ratio] if m.group(1) == "forget" else all_ids - published[ratio]
                if set(training_rows[rel]) != expected:
                    raise DataError(folder, "ID", f"its {len(set(training_rows[rel]))} profiles are not "
                                    f"{BENCH}/{m.group(1)}_{m.group(2)}'s {len(expected)} "
                                    f"(e.g. {sorted(set(training_rows[rel]) ^ expected)[:3]})")
    unseen = sorted(all_ids - set(training_rows[f"{BENCH}/ft_Data"]))
    if unseen:
        report.warn(f"{BENCH}/ft_Data", f"{len(unseen)} Full_Set profiles have no fine-tuning row, e.g. {unseen[:3]}")

    corpus_names = {}
    for corpus in corpora:
        rows, reports = read_training_folder(root / corpus, decode_images=True)
        report.add(corpus, reports)
        # a row about a fictitious person (a corpus cut from ft_Data) has that person's name; others (the
        # celebrities of a pre-training corpus) are named by their own biography
        joined = [p.id if p.id in all_ids else by_image.get(_digest(p.image)) for p in rows]
        corpus_names[corpus] = [names_by_id[pid] if pid else names.name_from_biography(p.biography)
                                for p, pid in zip(rows, joined)]
        for p, name in zip(rows, corpus_names[corpus]):
            if name is None and names_required:
                raise DataError(p.origin[0], "biography", "no name can be derived from the biography for the "
                                "text-only formats", p.origin[1], p.id or None)

    facts = {"data_root": str(root), "manifest_sha256": sha256_file(root / manifest.MANIFEST) if has_manifest else None,
             "names": names_by_id,
             "training_rows": training_rows, "corpus_names": corpus_names,
             "report": report.folders}
    log.info("validated %s: %d folders, %d rows, %d skipped items, %d warnings", root, len(report.folders),
             sum(f["rows"] for f in report.folders.values()),
             sum(len(f["skipped"]) for f in report.folders.values()),
             sum(len(f["warnings"]) for f in report.folders.values()))
    return facts


def load_facts(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def write(facts: dict, facts_path: str | Path, html_path: str | Path) -> None:
    write_json_atomic(facts_path, facts)
    write_text_atomic(html_path, report_html(facts))


def report_html(facts: dict) -> str:
    """The load report as a page of the Snakemake report: per folder, rows, skipped items and warnings."""
    rows = []
    for folder, entry in facts["report"].items():
        skipped = "".join(f"<li>{escape(s['reason'])}: {escape(Path(s['file']).name)}, row {s['row']}, "
                          f"ID {escape(str(s['id']))}, field {escape(s['field'])}</li>" for s in entry["skipped"])
        warnings = "".join(f"<li>{escape(w)}</li>" for w in entry["warnings"])
        rows.append(f"<tr><td>{escape(folder)}</td><td>{len(entry['files'])}</td><td>{entry['rows']}</td>"
                    f"<td><ul>{skipped}</ul></td><td><ul>{warnings}</ul></td></tr>")
    named = sum(n is not None for n in facts["names"].values())
    return ("<html><body><h2>Data load report</h2>"
            f"<p>{escape(facts['data_root'])}, manifest sha256 {str(facts['manifest_sha256'])[:12]}; "
            f"{named} of {len(facts['names'])} fictitious people named for the text-only variant.</p>"
            "<table border='1'><tr><th>folder</th><th>files</th><th>rows</th><th>skipped items</th>"
            f"<th>warnings</th></tr>{''.join(rows)}</table></body></html>")
