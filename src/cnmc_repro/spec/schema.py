"""The spec schema: what one YAML file of ``benchmarks/`` holds, as frozen dataclasses.

A spec holds its recipe (what to run), the choices made where the report is silent (with the reason),
the published figures it is compared with (as printed, with where they stand in the report), and the
tolerance of the comparison. An unknown key, a missing field or a wrong type stops with the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cnmc_repro.errors import UserError

# torchvision architectures that fastai knows how to cut into body and head (fastai.vision.learner.model_meta)
Arch = Literal[
    "alexnet",
    "squeezenet1_0",
    "squeezenet1_1",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "densenet169",
    "densenet201",
]
Kind = Literal["train", "progressive_resizing", "kfold", "bayesian_search", "ensemble"]
NOT_SPECS = {"dataset.yaml"}  # benchmarks/ files that are not experiment specs


@dataclass(frozen=True)
class Where:
    """Where the published figures stand in the report."""

    section: str
    pages: list[int] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One ``fit_one_cycle`` call. ``lr`` is the max_lr; two values are fastai's ``slice(lo, hi)``."""

    name: str
    epochs: int
    lr: float | tuple[float, float]
    frozen: bool
    size: int | None = None  # progressive resizing: the image size of this stage
    table: str | None = None  # the published table this stage's epochs are compared with


@dataclass(frozen=True)
class FBeta:
    """The f_beta column: fastai v1 ``FBeta(beta=2)`` scored class index 1 ('hem', normal) by default."""

    beta: float
    positive: Literal["ALL", "normal"]


@dataclass(frozen=True)
class Prepare:
    """Section 3.2: crop to the informative part, histogram equalisation, resize (``data.prepare``)."""

    equalise: Literal["luma", "rgb", "none"] = "luma"
    resize: Literal["pad", "squash"] = "pad"
    crop_threshold: int = 0


@dataclass(frozen=True)
class Augmentation:
    """The training set's augmentation (section 3.2.3), applied batch-wise on the device (``run.batches``).

    ``transforms``:

    - ``fastai_v1`` (the default): fastai v1's ``get_transforms(flip_vert=True)`` (``fastai/vision/transform.py``,
      resampled as ``fastai/vision/image.py`` does): the dihedral group (each of the 8 flips and quarter turns
      alike), a symmetric warp of up to ``max_warp``, rotation up to ``max_rotate`` degrees and a zoom up to
      ``max_zoom`` about a random centre, each with probability ``p_affine``, sampled in one grid with
      reflection padding; then brightness and contrast up to ``max_lighting`` (in logit space), each with
      probability ``p_lighting``. The section names flips and rotation among "some of the augmentations that
      we did" and speaks of rotation, zoom and translation, but prints no code: this is fastai v1's standard
      set, with the vertical flips it names.
    - ``flips_rotate``: only what section 3.2.3 names, horizontal and vertical flips (each with probability
      0.5) and rotation up to ``max_rotate`` degrees with probability ``p_affine``, the corners a rotation
      uncovers left black (the suite's recipe before it followed fastai v1).
    """

    transforms: Literal["fastai_v1", "flips_rotate"] = "fastai_v1"
    max_rotate: float = 10.0  # degrees
    max_zoom: float = 1.1
    max_warp: float = 0.2
    max_lighting: float = 0.2
    p_affine: float = 0.75
    p_lighting: float = 0.75


@dataclass(frozen=True)
class Recipe:
    arch: Arch
    pretrained: bool
    size: int
    bs: int
    split: Literal["random", "subject"]
    valid_size: int | float  # a number of cells, or a fraction
    loss: Literal["cross_entropy", "weighted_cross_entropy"]
    dropout: float  # fastai head ``ps``
    wd: float
    f_beta: FBeta
    stages: list[Stage]
    lr_find: bool = False
    test: bool = True  # evaluate on the preliminary test set when the data has it
    prepare: Prepare = field(default_factory=Prepare)
    augment: Augmentation = field(default_factory=Augmentation)


@dataclass(frozen=True)
class KFold:
    """Fig 4.9: ``StratifiedKFold(n_splits=5, shuffle=True, random_state=1)``."""

    folds: int
    random_state: int
    grouping: Literal["cells", "subjects"]
    carry_weights: bool  # the learner is created once and trained on fold after fold (Fig 4.9's code)
    trained_folds: int | None = None  # train only the first n folds of the split (the timing profile: 1)


@dataclass(frozen=True)
class Bound:
    low: float
    high: float


@dataclass(frozen=True)
class Bayesian:
    """Fig 4.12: bayes_opt over dropout ``dp``, learning rate ``lr`` and weight decay ``wd``."""

    bounds: dict[str, Bound]
    random_state: int
    init_points: int
    n_iter: int
    probe_epochs: int
    retrain: list[Stage]  # the best probe trained again (Table 4.14)


@dataclass(frozen=True)
class Ensemble:
    """Section 4.2.1: averaged class probabilities of member runs (member spec ids)."""

    combinations: list[list[str]]


@dataclass(frozen=True)
class Choice:
    """A detail the report leaves out: the value chosen and why."""

    field: str
    value: str | int | float | bool
    why: str


@dataclass(frozen=True)
class PublishedTable:
    """A table as printed: ``rows`` are the printed lines, columns separated by white space."""

    caption: str
    columns: list[str]
    rows: list[str]
    page: int | None = None
    stage: str | None = None  # the recipe stage it shows
    fold: int | None = None  # k-fold: which fold (0-based)
    command: str | None = None  # the code line printed above it
    notes: list[str] = field(default_factory=list)

    def printed_rows(self) -> list[dict[str, str]]:
        """The rows as printed, column by column (the printed digits say how exact a figure is)."""
        out = []
        for line in self.rows:
            cells = line.split()
            if len(cells) != len(self.columns):
                raise UserError(
                    f"published row {line!r} of {self.caption} has {len(cells)} columns, not {len(self.columns)}"
                )
            out.append(dict(zip(self.columns, cells, strict=True)))
        return out

    def values(self) -> list[dict[str, float | str]]:
        """The rows as numbers (time columns stay text)."""
        return [{c: (v if c == "time" else float(v)) for c, v in row.items()} for row in self.printed_rows()]


@dataclass(frozen=True)
class BayesIteration:
    index: int
    target: str  # as printed, all digits
    dp: str
    lr: str
    wd: str


@dataclass(frozen=True)
class Published:
    tables: dict[str, PublishedTable] = field(default_factory=dict)
    test_accuracy: str | None = None  # as printed, e.g. "75.46%"
    lr_chosen: str | None = None  # the rate read off the lr-finder figure
    schedule: dict[int, int] = field(default_factory=dict)  # Table 4.5: image size -> epochs
    bayesian: list[BayesIteration] = field(default_factory=list)
    bayesian_best: int | None = None  # the index of the iteration the report calls best
    statements: list[str] = field(default_factory=list)  # sentences of the report this spec checks
    notes: list[str] = field(default_factory=list)  # oddities kept visible, not fixed


@dataclass(frozen=True)
class Tolerance:
    """How far a reproduced figure may lie from the published one and still be called reproduced."""

    accuracy: float = 0.03
    f_beta: float = 0.05
    test_accuracy: float = 0.05


@dataclass(frozen=True)
class Spec:
    id: str
    title: str
    kind: Kind
    report: Where
    published: Published
    recipe: Recipe | None = None
    kfold: KFold | None = None
    bayesian: Bayesian | None = None
    ensemble: Ensemble | None = None
    choices: list[Choice] = field(default_factory=list)
    tolerance: Tolerance = field(default_factory=Tolerance)
    notes: list[str] = field(default_factory=list)
    path: str = ""  # the file it came from (set by the loader)
