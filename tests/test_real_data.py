"""Integration tests on the real C-NMC sample in ../shared/data (skipped when it is absent)."""

import numpy as np
import pytest
from conftest import SHARED_DATA, real_data

from cnmc_repro.data.dataset import load_dataset
from cnmc_repro.data.prepare import Preparation, prepare_file
from cnmc_repro.spec.schema import Prepare

pytestmark = pytest.mark.real_data


def test_data_check_on_fold0(cli):
    code, out, _ = cli("data", "check", "--data", real_data("cnmc_fold0"))
    assert code == 0
    assert "train           0 ALL       2397       19" in out
    assert "train           0 normal    1130        9" in out
    assert "2397/2397     19/19  challenge  ok" in out and "1130/1130       9/9  challenge  ok" in out


def test_png_and_bmp_copies_give_identical_prepared_arrays():
    bmp_root, png_root = real_data("cnmc_bmp_sample"), real_data("cnmc_fold0")
    bmps = load_dataset(bmp_root).cells
    assert len(bmps) == 16
    for prep in (Preparation(size=224), Preparation(300, Prepare(equalise="rgb", resize="squash"))):
        for cell in bmps:
            png = png_root / cell.path.relative_to(bmp_root).with_suffix(".png")
            assert np.array_equal(prepare_file(cell.path, prep), prepare_file(png, prep)), cell.path.name


def test_checksums_of_the_bmp_sample(cli):
    code, out, _ = cli(
        "data",
        "check",
        "--data",
        real_data("cnmc_bmp_sample"),
        "--checksums",
        SHARED_DATA / "cnmc_checksums.tsv",
    )
    assert code == 0 and "checksums: 16 match, 0 differ, 15099 missing, 0 extra" in out


@pytest.mark.slow
def test_smoke_loss_penalisation_with_a_subject_split_beats_the_majority_class(tmp_path, monkeypatch):
    """Section 4.2.3's recipe, smoke profile, validated on subjects it never trained on (fold_0 of C-NMC)."""
    import shutil

    from cnmc_repro.run.engine import Options, run
    from cnmc_repro.run.models import weights_file
    from cnmc_repro.spec.load import spec_files
    from cnmc_repro.store.folders import load_json

    root = real_data("cnmc_fold0")
    if not weights_file("resnet50").is_file():
        pytest.skip(
            f"needs ResNet50's ImageNet weights in torchvision's cache ({weights_file('resnet50')}): the smoke "
            "profile uses them only when cached, and from random weights one epoch per stage does not learn C-NMC "
            "(measured: every validation cell predicted ALL, balanced accuracy 0.50)"
        )
    specs = tmp_path / "specs"
    specs.mkdir()
    for p in spec_files():
        shutil.copy(p, specs / p.name)
    lp = specs / "loss_penalisation.yaml"
    lp.write_text(lp.read_text().replace("  split: random\n", "  split: subject\n"))
    monkeypatch.setenv("CNMC_REPRO_SPECS", str(specs))
    (out,) = run(
        ["loss_penalisation"],
        Options(data=str(root), profile="smoke", device="cpu", results=tmp_path / "results", quiet=True),
    )
    result = load_json(out.run_dir / "result.json")
    assert result["pretrained"] is True
    assert result["validation"]["balanced_accuracy"] > 0.5  # the majority class scores 0.5
