"""`reproduce data check`: what a data folder holds, beside the counts the report and the challenge publish.

It counts cells and subjects per split, fold and class, lists byte-identical files, names every image file
that cannot be read, and with a checksum list (``sha256<TAB>bytes<TAB>path``, as ``cnmc_checksums.tsv``)
says which files match, differ, are missing or are extra.

Unreadable images are found by each file's structure (``prepare.structure_problem``: empty, a BMP shorter
than its header declares, a PNG without its end chunk, neither format), which reads 4 kB of a file; with
``decode`` every image is decoded as a run would decode it. Measured on a 2-core machine from the page cache:
the structure check takes about 0.2 ms a file (3 s for the 15,114 official images), a full decode about 1 ms
a 450 x 450 BMP and 7-9 ms a 600 x 600 BMP (35-50 s for the official set, plus reading its 9.2 GB where they
are not cached), so the structure check is the default.
"""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cnmc_repro.data.dataset import (
    PRELIM_LABELS,
    TRAIN,
    Cell,
    Dataset,
    count_table,
    relative_path,
)
from cnmc_repro.data.prepare import HEAD_BYTES, TAIL_BYTES, decode, structure_problem
from cnmc_repro.errors import BadImage, UserError
from cnmc_repro.progress import bar
from cnmc_repro.spec.dataset import PublishedDataset
from cnmc_repro.spec.dataset import published_dataset as published_dataset  # `data check` reads it here


def compare_counts(ds: Dataset, published: PublishedDataset) -> list[dict]:
    """Each published count beside the observed one: status ok, differs, absent or partial."""
    folds_present = {c.fold for c in ds.cells if c.split == TRAIN}
    all_folds = {e.fold for e in published.expected if e.fold is not None}
    rows = []
    for e in published.expected:
        scope = [
            c
            for c in ds.cells
            if c.split == e.split and (e.fold is None or c.fold == e.fold) and (e.label is None or c.label == e.label)
        ]
        observed_cells = len(scope)
        observed_subjects = len({c.subject for c in scope if c.subject})
        present = any(c.split == e.split and (e.fold is None or c.fold == e.fold) for c in ds.cells)
        if not present:
            status = "absent"
        elif e.split == TRAIN and e.fold is None and not all_folds <= folds_present:
            missing = ", ".join(f"fold_{k}" for k in sorted(all_folds - folds_present))
            status = f"partial ({missing} absent)"
        else:
            same = observed_cells == e.cells and (e.subjects is None or observed_subjects == e.subjects)
            status = "ok" if same else "differs"
        rows.append(
            {
                "split": e.split,
                "fold": e.fold,
                "label": e.label,
                "published_cells": e.cells,
                "cells": observed_cells if present else None,
                "published_subjects": e.subjects,
                "subjects": observed_subjects if present else None,
                "source": e.source,
                "status": status,
            }
        )
    return rows


@dataclass
class ChecksumReport:
    match: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)  # a PNG copy of a listed BMP: not byte-comparable


def read_checksums(path: Path) -> dict[str, tuple[str, int]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checksum file {path} does not exist")
    out = {}
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header != ["sha256", "bytes", "path"]:
            raise UserError(f"checksum file {path} must start with the header sha256<TAB>bytes<TAB>path")
        for n, row in enumerate(reader, start=2):
            if len(row) != 3 or len(row[0]) != 64 or not row[1].isdigit():
                raise UserError(f"checksum file {path} line {n} is not sha256<TAB>bytes<TAB>path")
            out[row[2]] = (row[0], int(row[1]))
    return out


def compare_checksums(ds: Dataset, checksums: dict[str, tuple[str, int]]) -> ChecksumReport:
    report = ChecksumReport()
    present: dict[str, str] = {relative_path(c, ds.root): c.sha256 for c in ds.cells}
    labels = ds.root / PRELIM_LABELS
    if labels.is_file():
        present[PRELIM_LABELS] = hashlib.sha256(labels.read_bytes()).hexdigest()
    listed_stems = {os.path.splitext(p)[0]: p for p in checksums}
    for rel, sha in sorted(present.items()):
        if rel in checksums:
            (report.match if checksums[rel][0] == sha else report.differ).append(rel)
        elif rel.lower().endswith(".png") and os.path.splitext(rel)[0] in listed_stems:
            report.converted.append(rel)
        else:
            report.extra.append(rel)
    covered = set(present) | {listed_stems[os.path.splitext(r)[0]] for r in report.converted}
    report.missing = sorted(p for p in checksums if p not in covered)
    return report


def image_problem(path: Path, full_decode: bool = False) -> str | None:
    """Why the image file at ``path`` cannot be read, or None: from its structure, or by decoding it."""
    try:
        if full_decode:
            decode(path.read_bytes(), path)
            return None
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
        return structure_problem(head, tail, size)
    except BadImage as e:
        return e.why
    except OSError as e:
        return f"the file cannot be read ({e.strerror or e})"


def unreadable_images(cells: list[Cell], full_decode: bool = False, progress: bool = True) -> list[tuple[Cell, str]]:
    """Every cell whose image file cannot be read, with the reason, in the cells' order."""
    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:  # file reads and OpenCV release the GIL
        found = pool.map(lambda c: image_problem(c.path, full_decode), cells)
        what = "decoding images" if full_decode else "checking images"
        problems = list(bar(found, what, len(cells), progress))
    return [(c, why) for c, why in zip(cells, problems, strict=True) if why]


def format_unreadable(ds: Dataset, bad: list[tuple[Cell, str]], full_decode: bool) -> str:
    """One line per unreadable image, then their count."""
    if not bad:
        if full_decode:
            return f"images: all {len(ds.cells)} files decode"
        return (
            f"images: all {len(ds.cells)} files are whole BMP or PNG files by their structure (header against "
            "size, PNG end chunk); --decode decodes each"
        )
    lines = ["unreadable images (decoded):" if full_decode else "unreadable images (by their structure):"]
    lines += [f"  {relative_path(c, ds.root)}: {why}" for c, why in bad]
    lines.append(
        f"{len(bad)} of {len(ds.cells)} image(s) cannot be read: fix or remove them, or pass --skip-bad to a run "
        "to leave them out"
    )
    return "\n".join(lines)


def format_check(ds: Dataset, published: PublishedDataset, checksums: ChecksumReport | None = None) -> str:
    lines = []
    if ds.synthetic:
        lines.append("SYNTHETIC DATA: the built-in cells, not C-NMC; counts are not comparable with the report.")
    lines.append(f"data: {ds.root}")
    lines.append("")
    lines.append(f"{'split':<12} {'fold':>4} {'class':<7} {'cells':>6} {'subjects':>8}")
    for r in count_table(ds.cells):
        fold = "" if r["fold"] is None else str(r["fold"])
        label = r["label"] or "-"
        lines.append(f"{r['split']:<12} {fold:>4} {label:<7} {r['cells']:>6} {r['subjects']:>8}")
    lines.append("")
    lines.append("against the published counts:")
    lines.append(f"{'split':<12} {'fold':>4} {'class':<7} {'cells':>13} {'subjects':>9}  {'source':<10} status")
    for r in compare_counts(ds, published):
        fold = "" if r["fold"] is None else str(r["fold"])
        cells = f"{_n(r['cells'])}/{r['published_cells']}"
        subjects = f"{_n(r['subjects'])}/{_n(r['published_subjects'])}" if r["published_subjects"] else ""
        lines.append(
            f"{r['split']:<12} {fold:>4} {r['label'] or 'both':<7} {cells:>13} {subjects:>9}  "
            f"{r['source']:<10} {r['status']}"
        )
    lines.append("(observed/published)")
    groups = ds.duplicate_groups()
    lines.append("")
    lines.append(
        f"byte-identical files: {len(groups)} group(s) holding {sum(len(g) for g in groups)} files "
        f"(the official copy has {published.duplicate_groups} groups)"
    )
    for g in groups:
        lines.append("  " + "  =  ".join(_describe_cell(c, ds.root) for c in g))
    if checksums is not None:
        lines.append("")
        lines.append(
            f"checksums: {len(checksums.match)} match, {len(checksums.differ)} differ, "
            f"{len(checksums.missing)} missing, {len(checksums.extra)} extra"
            + (
                f", {len(checksums.converted)} PNG copies of listed BMP files (not byte-comparable)"
                if checksums.converted
                else ""
            )
        )
        for name, items in (("differ", checksums.differ), ("extra", checksums.extra)):
            for rel in items[:20]:
                lines.append(f"  {name}: {rel}")
            if len(items) > 20:
                lines.append(f"  ... and {len(items) - 20} more {name}")
    return "\n".join(lines)


def _n(v) -> str:
    return "-" if v is None else str(v)


def _describe_cell(c: Cell, root: Path) -> str:
    where = f"subject {c.subject}" if c.subject else "unknown subject"
    return f"{relative_path(c, root)} ({where})"
