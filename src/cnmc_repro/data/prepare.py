"""Preparing cells as the report did (section 3.2), and caching the prepared arrays.

1. Crop to the informative part (3.2.1): keep the rows and columns with at least one pixel above the
   threshold 0 (the segmented background is exactly 0).
2. Contrast enhancement by histogram equalisation (3.2.2). The report does not say which variant; the
   suite equalises the luma (Y of YCrCb) with OpenCV's global ``equalizeHist`` and keeps the chroma. Why:
   the report wants the nucleus' contours more visible, which is a matter of brightness; equalising R, G
   and B apart would also shift the stain's hue, which the data providers had normalised. The black
   background does not change the result: equalisation maps grey level v through (cdf(v) - cdf_min), and
   the background only adds to cdf_min, so the cell's own histogram decides and black stays black.
   ``equalise: rgb`` (each channel apart) and ``none`` are there to test the choice.
3. Resize to the size a spec asks for. The crop is padded with black to a square first (centred), so the
   cell keeps its shape; ``resize: squash`` stretches the crop instead.

Prepared arrays are uint8 RGB, cached on disk per cell, keyed by the SHA-256 of the input file, the
preparation parameters and the code that prepares (this module and OpenCV's version), and written atomically
(temporary file, then rename): a changed file, parameter or code touches only its own entries, and an
interrupted run leaves no entry that a later run trusts (what a killed one left half-written is removed).
Processes that share the cache folder (two invocations, the Ray tasks of one machine) prepare the cells of
one preparation one process at a time, under a lock per preparation key: the first prepares what is
missing and the next read it, so that each cell is prepared once per cache. Reading needs no lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock

from cnmc_repro.atomic import remove_stale_temps, write_atomic
from cnmc_repro.data.dataset import Cell
from cnmc_repro.errors import BadImage, UserError
from cnmc_repro.paths import cache_root
from cnmc_repro.progress import bar
from cnmc_repro.spec.schema import Prepare

cv2.utils.logging.setLogLevel(
    cv2.utils.logging.LOG_LEVEL_SILENT
)  # OpenCV's own warnings about broken files would precede our one-sentence error

# what decides a prepared array besides its file and settings: this module's code and OpenCV's, so that a change
# to either never reads arrays that the code before it prepared
PREPARE_VERSION = hashlib.sha256(Path(__file__).read_bytes() + cv2.__version__.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Preparation:
    """How one cell is prepared: the image size and the spec's preparation settings (``recipe.prepare``)."""

    size: int
    settings: Prepare = Prepare()

    def key(self) -> str:
        text = json.dumps({"size": self.size, **asdict(self.settings), "version": PREPARE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length 0, type, CRC
HEAD_BYTES, TAIL_BYTES = 64, 4096  # what structure_problem reads of a file


def structure_problem(head: bytes, tail: bytes, size: int) -> str | None:
    """What is wrong with an image file, judged without decoding it from its first ``HEAD_BYTES`` bytes, its
    last ``TAIL_BYTES`` and its size in bytes; None when nothing is.

    An empty file; a PNG file without its closing IEND chunk near the end (truncated); a BMP file shorter than
    the pixel array its header declares (offset + rows padded to 4 bytes x height; truncated); or neither.
    """
    if size == 0:
        return "the file is empty"
    if head.startswith(PNG_SIGNATURE):
        return None if PNG_END in tail else "the PNG file has no IEND chunk at its end (truncated)"
    if not head.startswith(b"BM"):
        return "it is neither a BMP nor a PNG file"
    if size < 26:
        return f"the BMP file ends inside its header after {size} bytes (truncated)"
    offset, header = int.from_bytes(head[10:14], "little"), int.from_bytes(head[14:18], "little")
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes, never compressed
        width, height, bpp, compression = (int.from_bytes(head[i : i + 2], "little") for i in (18, 20, 24, 26))
    elif size >= 34:  # BITMAPINFOHEADER and its V4/V5 extensions
        width, height = (int.from_bytes(head[i : i + 4], "little", signed=True) for i in (18, 22))
        bpp, compression = int.from_bytes(head[28:30], "little"), int.from_bytes(head[30:34], "little")
    else:
        return f"the BMP file ends inside its header after {size} bytes (truncated)"
    if compression not in (0, 3, 6):  # run-length or embedded JPEG/PNG: no fixed size to compare
        return None
    need = offset + (width * bpp + 31) // 32 * 4 * abs(height)
    if size < need:
        return f"the BMP file holds {size} bytes where its header declares {need} (truncated)"
    return None


def decode(data: bytes, path: Path | str) -> np.ndarray:
    """BMP or PNG bytes to an RGB uint8 array; BadImage (naming the file) when they cannot be decoded."""
    problem = structure_problem(data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data))
    if problem:
        raise BadImage(path, problem)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BadImage(path, "it is not a readable BMP or PNG image (truncated or corrupt)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop_informative(img: np.ndarray, threshold: int = 0) -> np.ndarray:
    """Section 3.2.1: the bounding rows and columns holding any pixel above ``threshold``."""
    on = (img > threshold).any(axis=2)
    rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    if rows.size == 0:
        return img[:0, :0]
    return img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def equalise(img: np.ndarray, variant: str) -> np.ndarray:
    """Section 3.2.2: histogram equalisation of an RGB uint8 image."""
    if variant == "none":
        return img
    if variant == "rgb":
        return np.dstack([cv2.equalizeHist(np.ascontiguousarray(img[..., c])) for c in range(3)])
    ycrcb = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = cv2.equalizeHist(np.ascontiguousarray(ycrcb[..., 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def resize(img: np.ndarray, size: int, how: str) -> np.ndarray:
    if how == "pad":
        h, w = img.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = img
        img = square
    interp = cv2.INTER_AREA if img.shape[0] >= size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def prepare_image(img: np.ndarray, prep: Preparation, path: Path | str = "image") -> np.ndarray:
    """Crop, equalise and resize one decoded RGB image (section 3.2)."""
    s = prep.settings
    cropped = crop_informative(img, s.crop_threshold)
    if cropped.size == 0:
        raise BadImage(path, f"no pixel is above the crop threshold {s.crop_threshold} (an empty cell)")
    return resize(equalise(np.ascontiguousarray(cropped), s.equalise), prep.size, s.resize)


def prepare_file(path: Path, prep: Preparation) -> np.ndarray:
    return prepare_image(decode(Path(path).read_bytes(), path), prep, path)


@dataclass
class Prepared:
    """Prepared cells, in the order asked for, less the bad ones left out with ``skip_bad``."""

    images: np.ndarray  # N x size x size x 3, uint8 RGB
    cells: list[Cell]
    skipped: list[tuple[Cell, str]]
    decoded: int  # how many came from image files rather than the cache


class PreparedCache:
    """Per-cell cache of prepared arrays under ``<cache>/prepared/<preparation key>/``."""

    def __init__(self, root: Path | None = None, workers: int | None = None):
        self.root = Path(root) if root else cache_root() / "prepared"
        self.workers = workers or min(16, os.cpu_count() or 1)

    def entry(self, cell: Cell, prep: Preparation) -> Path:
        return self.root / prep.key() / cell.sha256[:2] / f"{cell.sha256}.npy"

    def load(self, cells: list[Cell], prep: Preparation, skip_bad: bool = False, progress: bool = True) -> Prepared:
        """Prepared arrays for ``cells``: read from the cache, or decoded, prepared and cached."""
        if not cells:
            raise UserError("no cells to prepare")
        # byte-identical files share one cache entry and are prepared once
        first: dict[str, int] = {}
        for i, c in enumerate(cells):
            first.setdefault(c.sha256, i)
        unique = list(first.values())
        out = np.empty((len(cells), prep.size, prep.size, 3), np.uint8)
        bad: dict[str, str] = {}
        skipped: list[tuple[Cell, str]] = []
        decoded = 0

        def one(i: int) -> bool:
            entry = self.entry(cells[i], prep)
            try:
                arr = np.load(entry, allow_pickle=False)
                if arr.shape == out.shape[1:] and arr.dtype == np.uint8:
                    out[i] = arr
                    return False
            except (FileNotFoundError, ValueError, OSError, EOFError):
                pass  # absent or unreadable entry: prepare it again
            arr = prepare_file(cells[i].path, prep)
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            write_atomic(entry, lambda f: f.write(buf.getvalue()))
            out[i] = arr
            return True

        missing = any(not self.entry(cells[i], prep).is_file() for i in unique)
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / f"{prep.key()}.lock", thread_local=False)
        with lock if missing else contextlib.nullcontext(), ThreadPoolExecutor(self.workers) as pool:
            if missing:  # under the lock: what a killed preparer of this key left half-written is stale
                remove_stale_temps(self.root / prep.key())
            futures = [pool.submit(one, i) for i in unique]
            done = bar(futures, f"preparing cells ({prep.size}px)", len(futures), progress)
            for i, fut in zip(unique, done, strict=True):
                try:
                    decoded += fut.result()
                except BadImage as e:
                    if not skip_bad:
                        for f in futures:
                            f.cancel()
                        raise
                    bad[cells[i].sha256] = e.why
        ok = np.ones(len(cells), bool)
        for i, c in enumerate(cells):
            if c.sha256 in bad:
                ok[i] = False
                skipped.append((c, bad[c.sha256]))
            elif first[c.sha256] != i:
                out[i] = out[first[c.sha256]]
        kept = [c for c, keep in zip(cells, ok, strict=True) if keep]
        if not kept:
            raise UserError("every cell was left out as unreadable; nothing to train on")
        return Prepared(out[ok] if not ok.all() else out, kept, skipped, decoded)
