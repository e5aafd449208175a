from pathlib import Path

import pytest

from cnmc_repro.data.dataset import ALL, NORMAL, TRAIN, load_dataset, parse_cell_name
from cnmc_repro.errors import UserError


def test_reads_every_part_of_the_official_layout(tiny_data_ro):
    ds = load_dataset(tiny_data_ro)
    train, prelim, final = ds.split("train"), ds.split("prelim_test"), ds.split("final_test")
    assert len(train) == 36 and len(prelim) == 10 and len(final) == 2
    assert {c.fold for c in train} == {0, 1, 2}
    assert sum(c.label == ALL for c in train) == 24 and sum(c.label == NORMAL for c in train) == 12
    assert all(c.label is None and c.subject is None for c in final)
    assert all(len(c.sha256) == 64 for c in ds.cells)
    # the labels CSV gives the preliminary test cells their subjects and labels
    assert {c.label for c in prelim} == {ALL, NORMAL} and all(c.subject for c in prelim)


def test_subject_ids_are_case_insensitive():
    assert parse_cell_name("UID_h3_12_4_hem.bmp") == ("H3", NORMAL)
    assert parse_cell_name("UID_H3_1_1_hem") == ("H3", NORMAL)
    assert parse_cell_name("UID_45_2_1_all.png") == ("45", ALL)
    assert parse_cell_name("cell_45.bmp") is None


def test_missing_parts_are_allowed(tiny_data):
    import shutil

    shutil.rmtree(tiny_data / "validation_data")
    shutil.rmtree(tiny_data / "testing_data")
    ds = load_dataset(tiny_data)
    assert {c.split for c in ds.cells} == {TRAIN}
    shutil.rmtree(tiny_data / "training_data")
    (tiny_data / "testing_data/C-NMC_test_final_phase_data").mkdir(parents=True)
    (tiny_data / "testing_data/C-NMC_test_final_phase_data/1.bmp").write_bytes(b"x")
    assert [c.split for c in load_dataset(tiny_data).cells] == ["final_test"]


def test_png_and_bmp_both_load(tiny_data):
    import cv2

    src = next((tiny_data / "training_data/fold_0/all").glob("*.bmp"))
    cv2.imwrite(str(src.with_suffix(".png")), cv2.imread(str(src)))
    src.unlink()
    ds = load_dataset(tiny_data)
    assert any(c.path.suffix == ".png" for c in ds.cells)


def test_duplicates_are_found_by_content(tiny_data_ro):
    groups = load_dataset(tiny_data_ro).duplicate_groups()
    assert len(groups) == 1
    a, b = groups[0]
    assert a.path.read_bytes() == b.path.read_bytes() and a.subject != b.subject


def _one(folder: Path, pattern: str = "*.bmp") -> Path:
    return sorted(folder.glob(pattern))[0]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d / "nowhere", "does not exist"),
        (lambda d: (d / "training_data").parent.parent, "no C-NMC cells found"),
        (
            lambda d: (
                _one(d / "training_data/fold_0/all").rename(d / "training_data/fold_0/all/UID_1_9_9_hem.bmp") and d
            ),
            "is named as normal but lies in the all/ folder",
        ),
        (
            lambda d: [p.unlink() for p in (d / "training_data/fold_1/hem").glob("*")] and d,
            "holds no .bmp or .png image; an empty class",
        ),
    ],
    ids=["missing-folder", "no-layout", "label-mismatch", "empty-class"],
)
def test_bad_layouts_give_one_sentence_and_exit_2(tiny_data, cli, damage, message):
    target = damage(tiny_data)
    code, out, err = cli("data", "check", "--data", target)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1


def _rewrite_labels(root: Path, edit) -> None:
    csv_path = root / "validation_data/C-NMC_test_prelim_phase_data_labels.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda lines: lines[:-1], "has no row for"),
        (lambda lines: lines + ["UID_99_1_1_all.bmp,999.bmp,1"], "names 1 file(s) missing from"),
        (
            lambda lines: lines[:1] + [lines[1].rsplit(",", 1)[0] + ",7"] + lines[2:],
            "is neither 1 (ALL) nor 0",
        ),
        (lambda lines: ["a,b,c"] + lines[1:], "must have the header"),
    ],
    ids=["missing-row", "unknown-row", "unknown-label", "bad-header"],
)
def test_bad_labels_csv(tiny_data, cli, edit, message):
    _rewrite_labels(tiny_data, edit)
    code, _, err = cli("data", "check", "--data", tiny_data)
    assert code == 2 and message in err and "Traceback" not in err


def test_labels_csv_row_whose_name_disagrees_with_its_label(tiny_data):
    def flip(lines):
        name, new, lab = lines[1].split(",")
        return lines[:1] + [f"{name},{new},{1 - int(lab)}"] + lines[2:]

    _rewrite_labels(tiny_data, flip)
    with pytest.raises(UserError, match="but labelled"):
        load_dataset(tiny_data)
