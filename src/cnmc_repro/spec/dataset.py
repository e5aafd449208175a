"""The published dataset (``benchmarks/dataset.yaml``): the cell and subject counts of C-NMC 2019 as the report
(section 3.1, p. 11) and the challenge publish them.

It is a spec-like file: what a data folder should hold, loaded strictly. ``reproduce data check`` compares a
folder with every count; the audit and the experiments look single counts up with :meth:`PublishedDataset.cells`
("10,661 training cells, 7,272 ALL, 3,389 normal; 1,867 test cells") instead of copying them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnmc_repro.paths import specs_dir
from cnmc_repro.spec.strict import build, load_yaml

REPORT = "report 3.1"  # the source of the counts the report prints


@dataclass(frozen=True)
class ExpectedCount:
    split: str
    cells: int
    source: str
    fold: int | None = None
    label: str | None = None
    subjects: int | None = None


@dataclass(frozen=True)
class PublishedDataset:
    id: str
    title: str
    report: dict[str, str | int]
    expected: list[ExpectedCount]
    duplicate_groups: int
    notes: list[str] = field(default_factory=list)

    def cells(self, split: str, label: str | None = None, fold: int | None = None, source: str = REPORT) -> int:
        """The published number of cells of ``split`` (``"train"``, ``"prelim_test"``, ...), of one class
        (``label`` ``"ALL"`` or ``"normal"``; None: both) and fold (None: all), as ``source`` gives it
        (the report's section 3.1 by default): ``published_dataset().cells("train", label="ALL")`` is 7,272."""
        found = [e.cells for e in self.expected if (e.split, e.label, e.fold, e.source) == (split, label, fold, source)]
        if len(found) != 1:
            what = f"split={split!r}, label={label!r}, fold={fold!r}, source={source!r}"
            raise LookupError(f"{self.id}: {len(found)} published counts for {what}, not one")
        return found[0]


def published_dataset(path: Path | None = None) -> PublishedDataset:
    """``benchmarks/dataset.yaml`` (or ``path``) as a :class:`PublishedDataset`; a wrong key is an error."""
    path = path or specs_dir() / "dataset.yaml"
    return build(PublishedDataset, load_yaml(path), path)
