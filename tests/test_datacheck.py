import hashlib

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
