"""What each training stage reads, for real and synthetic data alike (spec §1.1, §3, §4).

- vanilla: ``MLLMU-Bench/ft_Data`` (all fictitious profiles);
- oracle and unlearning, published ratios: ``baseline_train_split/{forget_R, retain_100-R}``, as the original's
  baseline scripts read them; other ratios: ``ft_Data`` restricted to the split's IDs;
- replay / tiny pre-training: any training-format folder the config names (the twin writes ``Pretrain_Set``).

Training rows carry an image and QA pairs; whether the real files also carry ``ID`` and ``biography`` is
UNCONFIRMED (spec §1.1), yet the split filter needs the ID and the text-only variant needs the person's name.
``identify`` therefore joins every training row to its ``Full_Set`` profile: by ``ID`` when the row has one,
otherwise by the exact image bytes (the original's training and evaluation rows share the profile image). The
name then comes from that profile's biography (``Profile.name``). A row that cannot be joined is an error naming
the file and row.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .schema import DataError, Profile, read_benchmark_folder, read_training_folder


def _digest(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()


def identify(training: list[Profile], reference: dict[str, Profile], folder: str | Path) -> list[Profile]:
    """Give every training profile its Full_Set ID and biography (see module docstring)."""
    by_image = {}
    for p in reference.values():
        for img in p.images:
            by_image.setdefault(_digest(img), p)
    out = []
    for row, p in enumerate(training):
        ref = reference.get(p.id) if p.id else by_image.get(_digest(p.image))
        if ref is None:
            how = f"its ID '{p.id}' is not in Full_Set" if p.id else "it has no ID and its image matches no Full_Set profile"
            raise DataError(folder, "ID" if p.id else "image", f"cannot tell whom this training row is about: {how}",
                            row, p.id or None)
        out.append(Profile(id=ref.id, images=p.images, biography=p.biography or ref.biography, qa=p.qa))
    return out


def _read(data_root: Path, folder: str, reference: dict[str, Profile]) -> list[Profile]:
    return identify(read_training_folder(data_root / folder)[0], reference, data_root / folder)


def reference_profiles(data_root: str | Path) -> dict[str, Profile]:
    return read_benchmark_folder(Path(data_root) / "MLLMU-Bench" / "Full_Set")[0]


def vanilla_set(data_root: str | Path) -> list[Profile]:
    data_root = Path(data_root)
    return _read(data_root, "MLLMU-Bench/ft_Data", reference_profiles(data_root))


def split_sets(data_root: str | Path, split: dict, parts: tuple[str, ...] = ("forget", "retain")) -> dict:
    """``{"forget": [...], "retain": [...]}`` training profiles of one split (see module docstring)."""
    data_root = Path(data_root)
    reference = reference_profiles(data_root)
    ratio = split["forget_ratio"]
    folders = {"forget": f"baseline_train_split/forget_{ratio}", "retain": f"baseline_train_split/retain_{100 - ratio}"}
    ids = {"forget": set(split["forget_ids"]), "retain": set(split["retain_ids"])}
    out, pool = {}, None
    for part in parts:
        if split["source"] == "published" and (data_root / folders[part]).is_dir():
            profiles = _read(data_root, folders[part], reference)
            got = {p.id for p in profiles}
            if got != ids[part]:
                raise DataError(data_root / folders[part], "ID", f"its {len(got)} profiles are not the split's "
                                f"{len(ids[part])} {part} profiles (e.g. {sorted(got ^ ids[part])[:3]})")
        else:
            pool = pool if pool is not None else _read(data_root, "MLLMU-Bench/ft_Data", reference)
            profiles = [p for p in pool if p.id in ids[part]]
        out[part] = profiles
    return out


def folder_set(data_root: str | Path, folder: str) -> list[Profile]:
    """A training-format folder used as is (replay data, the tiny model's pre-training corpus): its rows are
    not fictitious profiles, so they are not joined to Full_Set; their names come from their own biography."""
    return read_training_folder(Path(data_root) / folder)[0]
