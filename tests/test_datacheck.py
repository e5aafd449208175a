import hashlib
import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from cnmc_repro.data.check import compare_checksums, compare_counts, read_checksums
from cnmc_repro.data.dataset import load_dataset
from cnmc_repro.spec.dataset import published_dataset


def test_published_counts_load_and_add_up():
    pub = published_dataset()
    rows = {(e.split, e.fold, e.label): e for e in pub.expected}
    assert (
        rows[("train", None, None)].cells == rows[("train", None, "ALL")].cells + rows[("train", None, "normal")].cells
    )
    assert rows[("train", None, None)].cells == sum(e.cells for e in pub.expected if e.fold is not None)
    assert rows[("prelim_test", None, None)].subjects == 28 and pub.duplicate_groups == 106


def test_counts_are_compared_with_the_published_ones(tiny_data_ro):
    rows = compare_counts(load_dataset(tiny_data_ro), published_dataset())
    fold0_all = next(r for r in rows if r["fold"] == 0 and r["label"] == "ALL")
    assert fold0_all["cells"] == 8 and fold0_all["published_cells"] == 2397 and fold0_all["status"] == "differs"


def test_data_check_on_the_builtin_data_says_it_is_synthetic(cli):
    code, out, _ = cli("data", "check")
    assert code == 0
    assert out.startswith("SYNTHETIC DATA")
    assert "byte-identical files: 3 group(s)" in out


def test_checksums_match_differ_missing_extra(tiny_data, tmp_path, cli):
    ds = load_dataset(tiny_data)
    cells = sorted(ds.cells, key=lambda c: str(c.path))
    rel = lambda c: c.path.relative_to(tiny_data).as_posix()  # noqa: E731
    lines = ["sha256\tbytes\tpath"]
    lines.append(f"{cells[0].sha256}\t1\t{rel(cells[0])}")  # match
    lines.append(f"{hashlib.sha256(b'other').hexdigest()}\t1\t{rel(cells[1])}")  # differ
    lines.append(f"{'0' * 64}\t1\ttraining_data/fold_9/all/UID_1_1_1_all.bmp")  # missing
    tsv = tmp_path / "sums.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    report = compare_checksums(ds, read_checksums(tsv))
    assert report.match == [rel(cells[0])] and report.differ == [rel(cells[1])]
    assert report.missing == ["training_data/fold_9/all/UID_1_1_1_all.bmp"]
    assert len(report.extra) == len(ds.cells) - 2 + 1  # the other cells and the labels CSV
    code, out, _ = cli("data", "check", "--data", tiny_data, "--checksums", tsv)
    assert code == 0 and "checksums: 1 match, 1 differ, 1 missing" in out


def test_bad_checksum_file(tiny_data_ro, tmp_path, cli):
    bad = tmp_path / "bad.tsv"
    bad.write_text("hash path\n")
    code, _, err = cli("data", "check", "--data", tiny_data_ro, "--checksums", bad)
    assert code == 2 and "must start with the header" in err
    code, _, err = cli("data", "check", "--data", tiny_data_ro, "--checksums", tmp_path / "none.tsv")
    assert code == 2 and "does not exist" in err


def test_synth_writes_a_loadable_synthetic_folder(tmp_path, cli):
    code, out, _ = cli("data", "synth", "--out", tmp_path / "cells")
    assert code == 0 and "SYNTHETIC" in out
    ds = load_dataset(tmp_path / "cells")
    assert len(ds.split("train")) == 265 and len(ds.split("prelim_test")) == 46
    code, _, err = cli("data", "synth", "--out", tmp_path / "cells")
    assert code == 2 and "is not empty" in err


def _as_png(bmp: Path) -> Path:
    """The cell re-saved as a PNG of the same pixels (the dataset reads either)."""
    png = bmp.with_suffix(".png")
    ok, buf = cv2.imencode(".png", cv2.imread(str(bmp)))
    png.write_bytes(buf.tobytes())
    bmp.unlink()
    return png


def _corrupt_idat(data: bytes) -> bytes:
    """A PNG whose compressed pixels are garbage: signature, chunks and end chunk intact."""
    start = data.index(b"IDAT") + 4
    return data[:start] + bytes(b ^ 0x5A for b in data[start : start + 200]) + data[start + 200 :]


@pytest.fixture
def damaged(tiny_data) -> tuple[Path, dict[str, Path], Path]:
    """The tiny data with a truncated, an empty and a garbage file of each of BMP and PNG, and one PNG whose
    structure is whole but whose pixels cannot be decoded."""
    cells = sorted((c.path for c in load_dataset(tiny_data).split("train")), key=str)
    rng = np.random.default_rng(0)
    bad = {}
    for kind, path in zip(("bmp", "png"), (cells[0], _as_png(cells[1])), strict=True):
        bad[f"truncated {kind}"] = path
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for kind, path in zip(("bmp", "png"), (cells[2], _as_png(cells[3])), strict=True):
        bad[f"empty {kind}"] = path
        path.write_bytes(b"")
    for kind, path in zip(("bmp", "png"), (cells[4], _as_png(cells[5])), strict=True):
        bad[f"garbage {kind}"] = path
        path.write_bytes(rng.bytes(3000))
    undecodable = _as_png(cells[6])
    undecodable.write_bytes(_corrupt_idat(undecodable.read_bytes()))
    return tiny_data, bad, undecodable


def test_data_check_names_every_unreadable_image_and_fails(damaged, cli):
    root, bad, undecodable = damaged
    code, out, _ = cli("data", "check", "--data", root)
    assert code == 1
    lines = out.splitlines()
    for what, path in bad.items():
        rel = path.relative_to(root).as_posix()
        (line,) = [x for x in lines if x.startswith(f"  {rel}: ")]  # one line per file
        reason = {"truncated": "(truncated)", "empty": "the file is empty", "garbage": "neither a BMP nor a PNG"}
        assert reason[what.split()[0]] in line, line
    assert undecodable.name not in out  # its structure is whole: only decoding finds it
    n = len(load_dataset(root).cells)
    assert f"6 of {n} image(s) cannot be read" in out and "--skip-bad" in out

    code, out, _ = cli("data", "check", "--data", root, "--decode")
    assert code == 1 and f"7 of {n} image(s) cannot be read" in out
    assert f"{undecodable.relative_to(root).as_posix()}: it is not a readable BMP or PNG image" in out


def test_data_check_passes_whole_images(tiny_data_ro, cli):
    for extra in ((), ("--decode",)):
        code, out, _ = cli("data", "check", "--data", tiny_data_ro, *extra)
        assert code == 0 and "images: all " in out and "cannot be read" not in out


def _bmp_v5(pixels: np.ndarray) -> bytes:
    """A 24-bit BMP with a BITMAPV5HEADER (124 bytes), the header of the official preliminary test cells
    (608,538 bytes at 450 x 450), written by hand: OpenCV writes the 40-byte header."""
    h, w, _ = pixels.shape
    row = (w * 3 + 3) // 4 * 4
    rows = b"".join(pixels[y].tobytes().ljust(row, b"\0") for y in range(h - 1, -1, -1))
    v5 = struct.pack("<IiiHHIIiiII", 124, w, h, 1, 24, 0, len(rows), 2835, 2835, 0, 0).ljust(124, b"\0")
    return b"BM" + struct.pack("<IHHI", 14 + 124 + len(rows), 0, 0, 14 + 124) + v5 + rows


def test_the_structure_check_reads_bmp_headers_as_a_decoder_does():
    from cnmc_repro.data.prepare import HEAD_BYTES, TAIL_BYTES, structure_problem

    pixels = np.random.default_rng(0).integers(0, 256, (450, 450, 3), dtype=np.uint8)
    v5 = _bmp_v5(pixels)
    assert len(v5) == 608_538
    assert np.array_equal(cv2.imdecode(np.frombuffer(v5, np.uint8), cv2.IMREAD_COLOR), pixels)

    def problem(data: bytes) -> str | None:
        return structure_problem(data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data))

    ok, bmp = cv2.imencode(".bmp", pixels)
    for whole in (v5, bmp.tobytes()):
        assert problem(whole) is None
        assert "where its header declares" in problem(whole[:-1])  # one byte short
        assert "ends inside its header" in problem(whole[:20])


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_run_stops_at_an_unreadable_image_or_leaves_them_out_with_skip_bad(damaged, tmp_path, cli):
    root, bad, undecodable = damaged
    n_train = len(load_dataset(root).split("train"))
    args = ("run", "squeezenet", "--data", root, "--profile", "smoke", "--device", "cpu", "--no-pretrained")
    code, _, err = cli(*args, "--results", tmp_path / "stopped")
    assert code == 2 and "cannot read image" in err and "Traceback" not in err
    code, _, err = cli(*args, "--results", tmp_path / "r", "--skip-bad")
    assert code == 0, err
    (run_dir,) = (tmp_path / "r").glob("squeezenet-smoke-*")
    record = json.loads((run_dir / "result.json").read_text())
    assert record["train_cells"] + record["valid_cells"] == n_train - len(bad) - 1  # the undecodable one too
