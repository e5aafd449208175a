"""Reading C-NMC 2019 in its official on-disk layout (report section 3.1).

    <root>/training_data/fold_{0,1,2}/{all,hem}/UID_<subject>_<image>_<cell>_{all,hem}.<bmp|png>
    <root>/validation_data/C-NMC_test_prelim_phase_data/<n>.<bmp|png>
    <root>/validation_data/C-NMC_test_prelim_phase_data_labels.csv   (Patient_ID,new_names,labels)
    <root>/testing_data/C-NMC_test_final_phase_data/<n>.<bmp|png>    (no labels)

Any of the three parts may be absent. Every cell gets its path, split, fold, label, subject and the
SHA-256 of its bytes; byte-identical files are found by that hash.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cnmc_repro.atomic import write_json_atomic
from cnmc_repro.errors import UserError
from cnmc_repro.paths import cache_root
from cnmc_repro.progress import bar

ALL, NORMAL = "ALL", "normal"
CLASSES = (ALL, NORMAL)  # fastai sorts the folder names: 'all' < 'hem'; index 0 is ALL, 1 is normal
FOLDER_LABEL = {"all": ALL, "hem": NORMAL}

TRAIN, PRELIM_TEST, FINAL_TEST = "train", "prelim_test", "final_test"
IMAGE_EXTENSIONS = (".bmp", ".png")

TRAIN_DIR = "training_data"
PRELIM_DIR = "validation_data/C-NMC_test_prelim_phase_data"
PRELIM_LABELS = "validation_data/C-NMC_test_prelim_phase_data_labels.csv"
FINAL_DIR = "testing_data/C-NMC_test_final_phase_data"

CELL_NAME = re.compile(r"^UID_([A-Za-z]?\d+)_(\d+)_(\d+)_(all|hem)(\.[A-Za-z]+)?$", re.IGNORECASE)

EXPECTED_LAYOUT = (
    "expected training_data/fold_<k>/{all,hem}/UID_*.bmp, validation_data/C-NMC_test_prelim_phase_data/ "
    "or testing_data/C-NMC_test_final_phase_data/ inside it"
)


@dataclass(frozen=True)
class Cell:
    path: Path
    split: str  # TRAIN, PRELIM_TEST or FINAL_TEST
    fold: int | None  # training fold; None outside training_data
    label: str | None  # ALL or NORMAL; None where unpublished (final test)
    subject: str | None  # upper case, e.g. "45" or "H3"; None where unknown (final test)
    sha256: str

    @property
    def target(self) -> int:
        """Class index as fastai v1 numbered the sorted folder names: 0 = ALL ('all'), 1 = normal ('hem')."""
        return CLASSES.index(self.label)


@dataclass(frozen=True)
class Dataset:
    root: Path
    cells: tuple[Cell, ...]
    synthetic: bool = False

    def split(self, name: str) -> list[Cell]:
        return [c for c in self.cells if c.split == name]

    def duplicate_groups(self) -> list[list[Cell]]:
        """Groups of two or more byte-identical files, largest first."""
        by_hash: dict[str, list[Cell]] = defaultdict(list)
        for c in self.cells:
            by_hash[c.sha256].append(c)
        groups = [g for g in by_hash.values() if len(g) > 1]
        return sorted(groups, key=lambda g: (-len(g), str(g[0].path)))


def parse_cell_name(name: str) -> tuple[str, str] | None:
    """``UID_h3_12_4_hem.bmp`` -> (``"H3"``, ``"normal"``); None when the name is not a C-NMC cell name."""
    m = CELL_NAME.match(name)
    if not m:
        return None
    return m.group(1).upper(), FOLDER_LABEL[m.group(4).lower()]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


class _HashMemo:
    """SHA-256 of files, remembered by (size, mtime) so that a second run does not re-read them."""

    def __init__(self) -> None:
        self.file = cache_root() / "sha256-memo.json"
        try:
            self.memo = json.loads(self.file.read_text())
        except (FileNotFoundError, ValueError):
            self.memo = {}
        self.changed = False

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        hit = self.memo.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        h = hashlib.sha256(path.read_bytes()).hexdigest()
        self.memo[key] = [st.st_size, st.st_mtime_ns, h]
        self.changed = True
        return h

    def save(self) -> None:
        if self.changed:
            write_json_atomic(self.file, self.memo)


def load_dataset(root: Path | str, synthetic: bool = False, progress: bool = True) -> Dataset:
    """Read every cell under ``root`` (the folder holding ``training_data/``). Raises UserError on bad layout."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"data folder {root} does not exist; pass --data with the folder that holds training_data/")
    if not root.is_dir():
        raise UserError(f"data path {root} is not a folder; pass --data with the folder that holds training_data/")
    entries: list[tuple[Path, str, int | None, str | None, str | None]] = []
    entries += _training_entries(root)
    entries += _prelim_entries(root)
    entries += _final_entries(root)
    if not entries:
        hint = ""
        nested = [p for p in root.iterdir() if p.is_dir() and (p / TRAIN_DIR).is_dir()]
        if nested:
            hint = f" (did you mean {nested[0]}?)"
        raise UserError(f"no C-NMC cells found in {root}{hint}: {EXPECTED_LAYOUT}")
    memo = _HashMemo()
    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:  # hashlib releases the GIL
        hashes = list(bar(pool.map(memo.sha256, [e[0] for e in entries]), "hashing cells", len(entries), progress))
    cells = [Cell(*e, h) for e, h in zip(entries, hashes, strict=True)]
    memo.save()
    ds = Dataset(root, tuple(cells), synthetic)
    _check_classes(ds)
    return ds


def _training_entries(root: Path):
    train = root / TRAIN_DIR
    if not train.is_dir():
        return []
    folds = sorted(p for p in train.iterdir() if p.is_dir() and re.fullmatch(r"fold_\d+", p.name))
    if not folds:
        raise UserError(f"{train} holds no fold_<k> folders: {EXPECTED_LAYOUT}")
    out = []
    for fold_dir in folds:
        fold = int(fold_dir.name.split("_")[1])
        class_dirs = {p.name.lower(): p for p in fold_dir.iterdir() if p.is_dir()}
        if not set(class_dirs) & set(FOLDER_LABEL):
            raise UserError(f"{fold_dir} holds neither all/ nor hem/: {EXPECTED_LAYOUT}")
        for folder_name, label in FOLDER_LABEL.items():
            if folder_name not in class_dirs:
                continue
            images = _images_in(class_dirs[folder_name])
            if not images:
                raise UserError(f"class folder {class_dirs[folder_name]} holds no .bmp or .png image; an empty class")
            for path in images:
                parsed = parse_cell_name(path.stem)
                if parsed is None:
                    raise UserError(
                        f"{path} is not named like a C-NMC cell (UID_<subject>_<image>_<cell>_<all|hem>.bmp)"
                    )
                subject, name_label = parsed
                if name_label != label:
                    raise UserError(
                        f"{path} is named as {name_label} but lies in the {folder_name}/ folder ({label}); "
                        "move or rename it"
                    )
                out.append((path, TRAIN, fold, label, subject))
    return out


def _prelim_entries(root: Path):
    folder = root / PRELIM_DIR
    if not folder.is_dir():
        return []
    images = _images_in(folder)
    labels_csv = root / PRELIM_LABELS
    if not labels_csv.is_file():
        raise UserError(f"{folder} has no labels file {labels_csv}; the preliminary test set needs it")
    rows = read_prelim_labels(labels_csv)
    by_stem = {Path(name).stem: row for name, row in rows.items()}
    out = []
    for path in images:
        row = by_stem.get(path.stem)
        if row is None:
            raise UserError(f"labels file {labels_csv} has no row for {path.name}")
        subject, label = row
        out.append((path, PRELIM_TEST, None, label, subject))
    present = {p.stem for p in images}
    unknown = sorted(set(by_stem) - present)
    if unknown:
        raise UserError(
            f"labels file {labels_csv} names {len(unknown)} file(s) missing from {folder}, e.g. {unknown[0]}"
        )
    return out


def read_prelim_labels(path: Path) -> dict[str, tuple[str, str]]:
    """``new_names`` -> (subject, label) from the preliminary test labels CSV."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"Patient_ID", "new_names", "labels"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise UserError(f"labels file {path} must have the header Patient_ID,new_names,labels")
        rows: dict[str, tuple[str, str]] = {}
        for line, row in enumerate(reader, start=2):
            name, pid, lab = row["new_names"], row["Patient_ID"], (row["labels"] or "").strip()
            if lab not in ("0", "1"):
                raise UserError(f"labels file {path} line {line}: label {lab!r} is neither 1 (ALL) nor 0 (normal)")
            label = ALL if lab == "1" else NORMAL
            parsed = parse_cell_name(Path(pid or "").stem)
            if not name or parsed is None:
                raise UserError(f"labels file {path} line {line}: cannot read the row {row!r}")
            subject, name_label = parsed
            if name_label != label:
                raise UserError(f"labels file {path} line {line}: {pid} is a {name_label} name but labelled {lab}")
            if name in rows:
                raise UserError(f"labels file {path} line {line}: {name} is listed twice")
            rows[name] = (subject, label)
    return rows


def _final_entries(root: Path):
    folder = root / FINAL_DIR
    if not folder.is_dir():
        return []
    return [(p, FINAL_TEST, None, None, None) for p in _images_in(folder)]


def _check_classes(ds: Dataset) -> None:
    for split in (TRAIN, PRELIM_TEST):
        cells = ds.split(split)
        if not cells:
            continue
        for label in CLASSES:
            if not any(c.label == label for c in cells):
                raise UserError(f"the {split} cells of {ds.root} hold no {label} cell; a class folder is empty")


def count_table(cells: Iterable[Cell]) -> list[dict]:
    """Cells and subjects per split, fold and class, in a stable order."""
    groups: dict[tuple, list[Cell]] = defaultdict(list)
    for c in cells:
        groups[(c.split, c.fold, c.label)].append(c)
    order = {TRAIN: 0, PRELIM_TEST: 1, FINAL_TEST: 2}
    rows = []
    for (split, fold, label), members in sorted(
        groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1] or -1, kv[0][2] or "")
    ):
        subjects = {c.subject for c in members if c.subject}
        rows.append({"split": split, "fold": fold, "label": label, "cells": len(members), "subjects": len(subjects)})
    return rows


def relative_path(cell: Cell, root: Path) -> str:
    return os.path.relpath(cell.path, root).replace(os.sep, "/")
