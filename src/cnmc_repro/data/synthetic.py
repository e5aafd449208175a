"""The built-in data: a synthetic stand-in for C-NMC 2019, generated deterministically from a seed.

The project cannot ship C-NMC images, so this writes cells in the official layout and file names
(``training_data/fold_k/{all,hem}/UID_<subject>_<image>_<cell>_<all|hem>.bmp``, the preliminary test set
with its labels CSV, an unlabelled final test set): 450 x 450 BMP, one stained cell on a black background.

What separates the classes, statistically, as in real ALL and normal cells:
- The nucleus' share of the cell: a blast's nucleus fills most of the cell (mean 0.82 of its diameter) and sits
  near its centre; a normal lymphocyte shows more pale cytoplasm (0.64) around an eccentric nucleus. The share
  survives section 3.2's crop to the cell (which takes away the cell's size) and its luma equalisation, and is
  strong enough that each spec's smoke run learns it from random weights (``reproduce regression`` checks it).
- Blasts are larger on average, with a more irregular nuclear outline, finer chromatin and more often visible
  nucleoli; normal nuclei are rounder, with coarser, clumped chromatin.
- Every subject has its own stain colour and brightness, so that cells of one subject resemble each other
  and a split that mixes subjects is easier than one that keeps them apart.
- A few files are byte-identical copies across subjects and folds, as in the official data.
"""

from __future__ import annotations

import csv
import io
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cnmc_repro.atomic import write_text_atomic
from cnmc_repro.data.dataset import FINAL_DIR, PRELIM_DIR, PRELIM_LABELS, TRAIN_DIR
from cnmc_repro.paths import cache_root
from cnmc_repro.progress import bar

CELL_SIZE = 450
FINAL_CELL_SIZE = 600
MARKER = "SYNTHETIC-CNMC"  # a file at the root that says what this folder is


@dataclass(frozen=True)
class SynthLayout:
    """How many subjects and cells to write, per training fold and test set."""

    # per training fold: (ALL subjects, normal subjects, ALL cells, normal cells)
    folds: tuple[tuple[int, int, int, int], ...]
    prelim: tuple[int, int, int, int]
    final_cells: int
    duplicates: int  # byte-identical copies across subjects and folds


# The report's proportions (47 ALL + 26 normal subjects, 7,272 + 3,389 cells; test 13 + 15 subjects,
# 1,219 + 648 cells) scaled down so that every spec runs on a CPU in minutes.
SMALL = SynthLayout(
    folds=((4, 2, 60, 28), (4, 2, 60, 29), (4, 2, 61, 27)),
    prelim=(3, 3, 30, 16),
    final_cells=12,
    duplicates=3,
)
# The official counts exactly (fold sizes as the challenge publishes them), for timing at full scale.
FULL = SynthLayout(
    folds=((19, 9, 2397, 1130), (14, 9, 2418, 1163), (14, 8, 2457, 1096)),
    prelim=(13, 15, 1219, 648),
    final_cells=2586,
    duplicates=106,
)
LAYOUTS = {"small": SMALL, "full": FULL}


@dataclass(frozen=True)
class _Subject:
    uid: str
    is_all: bool
    colour: np.ndarray  # per-channel stain multipliers (B, G, R)
    brightness: float


def _outline(rng: np.random.Generator, theta: np.ndarray, irregular: float) -> np.ndarray:
    """A wavy outline: 1 plus a few random harmonics of the angle, ``irregular`` setting their amplitude."""
    out = np.ones_like(theta)
    for k in range(2, 7):
        out += np.float32(rng.normal(0, irregular / k**0.5)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return out.clip(0.6, 1.35)


def render_cell(rng: np.random.Generator, subject: _Subject, size: int = CELL_SIZE) -> np.ndarray:
    """One segmented cell (BGR uint8): a stained nucleus in a pale cytoplasm on an exactly black background."""
    is_all = subject.is_all
    scale = size / CELL_SIZE
    radius = float(np.clip(rng.normal(92.0 if is_all else 80.0, 12.0), 45.0, 150.0)) * scale
    # the nucleus' share of the cell's diameter: the class signal that survives section 3.2's crop to the cell
    ratio = float(np.clip(rng.normal(0.82 if is_all else 0.64, 0.06), 0.4, 0.97))
    elong = rng.uniform(1.0, 1.2 if is_all else 1.35)
    # draw only inside the box that can hold the cell: the outline reaches at most 1.35 radii
    half = min(size // 2, int(np.ceil(radius * 1.35 * elong)) + 4)
    cy, cx = (size / 2 + rng.normal(0, 0.05 * size, 2)).clip(half, size - half).tolist()
    oy, ox = int(cy) - half, int(cx) - half
    yy, xx = np.mgrid[oy : oy + 2 * half, ox : ox + 2 * half].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    rot = rng.uniform(0, np.pi)
    u = dx * np.float32(np.cos(rot)) + dy * np.float32(np.sin(rot))
    v = -dx * np.float32(np.sin(rot)) + dy * np.float32(np.cos(rot))
    cell = np.sqrt((u / np.float32(elong)) ** 2 + v**2) / (np.float32(radius) * _outline(rng, np.arctan2(dy, dx), 0.04))
    cell = cell < 1.0
    # the nucleus sits near the centre of a blast and off centre in a normal cell
    shift = (1 - ratio) * radius * (rng.uniform(0.1, 0.3) if is_all else rng.uniform(0.4, 0.8))
    a = rng.uniform(0, 2 * np.pi)
    ny, nx = cy + shift * np.sin(a), cx + shift * np.cos(a)
    ndy, ndx = yy - ny, xx - nx
    outline = _outline(rng, np.arctan2(ndy, ndx), 0.075 if is_all else 0.045)
    dist = np.sqrt(ndy**2 + ndx**2) / (np.float32(radius * ratio) * outline)
    nucleus = (dist < 1.0) & cell

    grain = (1.6 if is_all else 3.2) * rng.uniform(0.8, 1.25) * scale  # fine chromatin in blasts, clumped in normal
    noise = cv2.GaussianBlur(rng.standard_normal(dist.shape, dtype=np.float32), (0, 0), grain)
    noise /= noise.std() + 1e-6
    intensity = 0.62 + 0.10 * noise - 0.15 * dist.clip(0, 1) ** 2
    if rng.random() < (0.65 if is_all else 0.25):  # nucleoli
        for _ in range(rng.integers(1, 4)):
            r, b = rng.uniform(0, 0.5) * radius * ratio, rng.uniform(0, 2 * np.pi)
            py, px = ny + r * np.sin(b), nx + r * np.cos(b)
            s = rng.uniform(5, 10) * scale
            intensity += 0.22 * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / np.float32(2 * s * s))
    tint = subject.colour * subject.brightness
    stain = np.array([150.0, 70.0, 125.0], np.float32) * tint  # mauve nucleus, BGR
    cytoplasm = np.array([205.0, 160.0, 150.0], np.float32) * tint  # pale blue-grey
    texture = cv2.GaussianBlur(rng.standard_normal(dist.shape, dtype=np.float32), (0, 0), 4 * scale)
    img = np.where(nucleus[..., None], intensity[..., None] * stain, (0.85 + 0.04 * texture)[..., None] * cytoplasm)
    img += rng.normal(0, 2.0, img.shape).astype(np.float32)
    box = np.zeros(img.shape, np.uint8)
    box[cell] = img[cell].clip(1, 255).astype(np.uint8)  # >= 1 inside: only the background is exactly 0
    out = np.zeros((size, size, 3), np.uint8)
    out[oy : oy + 2 * half, ox : ox + 2 * half] = box
    return out


def _subjects(rng: np.random.Generator, n_all: int, n_normal: int, first_all: int, first_normal: int):
    subjects = []
    for i in range(n_all):
        subjects.append(_make_subject(rng, str(first_all + i), True))
    for i in range(n_normal):
        # one normal subject is written in lower case, as UID_h3 is in the official data
        uid = f"h{first_normal + i}" if i == 0 and first_normal == 1 else f"H{first_normal + i}"
        subjects.append(_make_subject(rng, uid, False))
    return subjects


def _make_subject(rng: np.random.Generator, uid: str, is_all: bool) -> _Subject:
    colour = rng.normal(1.0, 0.09, 3).clip(0.7, 1.3).astype(np.float32)
    return _Subject(uid, is_all, colour, float(rng.normal(1.0, 0.1)))


def _spread(n_cells: int, n_subjects: int) -> list[int]:
    base, extra = divmod(n_cells, n_subjects)
    return [base + (i < extra) for i in range(n_subjects)]


def _encode_bmp(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".bmp", img)
    assert ok
    return buf.tobytes()


def synthesize(out: Path, seed: int = 0, layout: SynthLayout = SMALL, progress: bool = True) -> Path:
    """Write the built-in data set into ``out`` (created); returns ``out``. Same seed, same bytes."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    jobs: list[tuple[Path, _Subject, int]] = []  # (path, subject, size)
    next_all, next_normal = 1, 1
    for fold, (n_all, n_normal, c_all, c_normal) in enumerate(layout.folds):
        subjects = _subjects(rng, n_all, n_normal, next_all, next_normal)
        next_all, next_normal = next_all + n_all, next_normal + n_normal
        counts = _spread(c_all, n_all) + _spread(c_normal, n_normal)
        for subject, count in zip(subjects, counts, strict=True):
            cls = "all" if subject.is_all else "hem"
            for k in range(count):
                image, cell = divmod(k, 4)
                name = f"UID_{subject.uid}_{image + 1}_{cell + 1}_{cls}.bmp"
                jobs.append((out / TRAIN_DIR / f"fold_{fold}" / cls / name, subject, CELL_SIZE))

    p_all, p_normal, pc_all, pc_normal = layout.prelim
    prelim_subjects = _subjects(rng, p_all, p_normal, next_all, next_normal + 1)
    prelim = []
    for subject, count in zip(prelim_subjects, _spread(pc_all, p_all) + _spread(pc_normal, p_normal), strict=True):
        cls = "all" if subject.is_all else "hem"
        for k in range(count):
            prelim.append((f"UID_{subject.uid}_{k // 4 + 1}_{k % 4 + 1}_{cls}.bmp", subject))
    order = rng.permutation(len(prelim))  # the published test files are numbered in shuffled order
    rows = []
    for number, i in enumerate(order, start=1):
        original, subject = prelim[i]
        jobs.append((out / PRELIM_DIR / f"{number}.bmp", subject, CELL_SIZE))
        rows.append((original, f"{number}.bmp", 1 if subject.is_all else 0))

    final_subjects = _subjects(rng, 2, 2, next_all + p_all, next_normal + p_normal + 1)
    for number in range(1, layout.final_cells + 1):
        jobs.append((out / FINAL_DIR / f"{number}.bmp", final_subjects[number % 4], FINAL_CELL_SIZE))

    seeds = rng.integers(0, 2**63, len(jobs))
    work = [(path, subject, size, int(s)) for (path, subject, size), s in zip(jobs, seeds, strict=True)]
    if len(work) > 1000:  # full-size sets: one process per core; each cell has its own seed, so same bytes
        with ProcessPoolExecutor() as pool:
            list(bar(pool.map(_write_cell, work, chunksize=64), "writing synthetic cells", len(work), progress))
    else:
        list(bar(map(_write_cell, work), "writing synthetic cells", len(work), progress))

    # byte-identical copies across subjects and folds (the official data has 106 such groups)
    train_paths = [p for p, _, _ in jobs if TRAIN_DIR in p.parts]
    for _ in range(layout.duplicates):
        src = train_paths[int(rng.integers(len(train_paths)))]
        cls = src.parent.name
        candidates = [p for p in train_paths if p.parent.name == cls and _subject_of(p) != _subject_of(src)]
        dst = candidates[int(rng.integers(len(candidates)))]
        dst.write_bytes(src.read_bytes())

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Patient_ID", "new_names", "labels"])
    writer.writerows(rows)
    write_text_atomic(out / PRELIM_LABELS, buf.getvalue())
    write_text_atomic(
        out / MARKER,
        f"Synthetic stand-in for C-NMC 2019 written by cnmc_repro (seed {seed}). Not real cells.\n",
    )
    return out


def _write_cell(job: tuple[Path, _Subject, int, int]) -> None:
    path, subject, size, seed = job
    data = _encode_bmp(render_cell(np.random.default_rng(seed), subject, size))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)  # the folder is complete once MARKER is written, last


def _subject_of(path: Path) -> str:
    return path.name.split("_")[1].upper()


def is_synthetic(root: Path) -> bool:
    return (Path(root) / MARKER).is_file()


def builtin_data(seed: int = 0, layout: str = "small", progress: bool = True) -> Path:
    """The built-in data set in the cache folder, generated on first use."""
    root = cache_root() / f"synthetic-{layout}-seed{seed}"
    if not (root / MARKER).is_file():  # the marker is written last: its presence means complete
        tmp = root.with_name(root.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        synthesize(tmp, seed, LAYOUTS[layout], progress)
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    return root
