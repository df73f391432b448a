"""What each training stage reads, for real and synthetic data alike (spec §1.1, §3, §4).

- vanilla: ``MLLMU-Bench/ft_Data`` (all fictitious profiles);
- oracle and unlearning, published ratios: ``baseline_train_split/{forget_R, retain_100-R}``, as the original's
  baseline scripts read them; other ratios: ``ft_Data`` restricted to the split's IDs;
- replay / tiny pre-training: any training-format folder the config names (the twin writes ``Pretrain_Set``).

Training rows carry an image and QA pairs; whether the real files also carry ``ID`` and ``biography`` is
UNCONFIRMED (spec §1.1), yet the split filter needs the ID and the text-only variant needs the person's name.
Both come from the validation pass (``data/validate.py``): whom each training row is about, joined to Full_Set,
and each person's name. ``facts`` is that pass's result (``validate_data``'s facts file in the workflow); a
caller without one (a test, a benchmark) gets it computed here.
"""

from __future__ import annotations

from pathlib import Path

from .schema import DataError, Profile, read_training_folder


def _facts(data_root: Path, facts: dict | None) -> dict:
    if facts is not None:
        return facts
    from .validate import validate

    return validate(data_root, require_manifest=False)


def _read(data_root: Path, folder: str, facts: dict) -> list[Profile]:
    """A training folder's rows, each with its Full_Set ID and name from the validated facts."""
    rows = read_training_folder(data_root / folder)[0]
    ids = facts["training_rows"].get(folder)
    if ids is None or len(ids) != len(rows):
        raise DataError(data_root / folder, "<file>", "not the data that was validated (run validate_data again)")
    return [Profile(id=pid, images=p.images, biography=p.biography, qa=p.qa, name=facts["names"].get(pid),
                    origin=p.origin) for pid, p in zip(ids, rows)]


def vanilla_set(data_root: str | Path, facts: dict | None = None, holdout: list[str] = ()) -> list[Profile]:
    """Every fictitious profile but the ``holdout`` people (data/splits.holdout_ids)."""
    data_root = Path(data_root)
    held = set(holdout)
    return [p for p in _read(data_root, "MLLMU-Bench/ft_Data", _facts(data_root, facts)) if p.id not in held]


def split_sets(data_root: str | Path, split: dict, parts: tuple[str, ...] = ("forget", "retain"),
               facts: dict | None = None) -> dict:
    """``{"forget": [...], "retain": [...]}`` training profiles of one split (see module docstring)."""
    data_root = Path(data_root)
    facts = _facts(data_root, facts)
    ratio = split["forget_ratio"]
    folders = {"forget": f"baseline_train_split/forget_{ratio}", "retain": f"baseline_train_split/retain_{100 - ratio}"}
    ids = {"forget": set(split["forget_ids"]), "retain": set(split["retain_ids"])}
    out, pool = {}, None
    for part in parts:
        if split["source"] == "published" and (data_root / folders[part]).is_dir():
            # validation checked that these folders hold exactly the published split's people; a holdout
            # (study.holdout_ratio) takes its people out of the published retain folder
            profiles = [p for p in _read(data_root, folders[part], facts) if p.id in ids[part]]
        else:
            pool = pool if pool is not None else _read(data_root, "MLLMU-Bench/ft_Data", facts)
            profiles = [p for p in pool if p.id in ids[part]]
        out[part] = profiles
    return out


def folder_set(data_root: str | Path, folder: str, facts: dict | None = None) -> list[Profile]:
    """A training-format folder used as is (replay data, the tiny model's pre-training corpus): its rows are
    not fictitious profiles, so they are not joined to Full_Set; their names come from their own biography."""
    data_root = Path(data_root)
    rows = read_training_folder(data_root / folder)[0]
    names = (facts or {}).get("corpus_names", {}).get(folder)
    if names is None:
        from .names import name_from_biography

        names = [name_from_biography(p.biography) for p in rows]
    return [Profile(id=p.id, images=p.images, biography=p.biography, qa=p.qa, name=name, origin=p.origin)
            for p, name in zip(rows, names)]


def finetune_sets(data_root: str | Path, stage: str, mix: dict, facts: dict | None = None, split: dict | None = None,
                  holdout: list[str] = ()) -> tuple[list[Profile], list[Profile]]:
    """A LoRA fine-tune's people and its replay people (the training job and the preflight both ask here):
    ``vanilla``, every fictitious profile but the ``holdout``; ``oracle``, the ``split``'s retain set (spec §4);
    the replay, ``mix.replay_data`` as is when ``mix.replay_fraction`` > 0, else none."""
    if stage == "vanilla":
        people = vanilla_set(data_root, facts, holdout)
    elif stage == "oracle":
        people = split_sets(data_root, split, ("retain",), facts)["retain"]
    else:
        raise ValueError(f"fine-tuning stage must be vanilla or oracle, got '{stage}'")
    replay = folder_set(data_root, mix["replay_data"], facts) if mix["replay_fraction"] > 0 else []
    return people, replay
