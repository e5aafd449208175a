"""The spec schema: what one YAML file of ``benchmarks/`` holds, as frozen dataclasses.

A spec holds its recipe (what to run), the choices made where the report is silent (with the reason),
the published figures it is compared with (as printed, with where they stand in the report), and the
tolerance of the comparison. An unknown key, a missing field, a wrong type or a number outside the range its
field declares (``ranged``) stops with the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cnmc_repro.errors import UserError
from cnmc_repro.spec.strict import Range, ranged

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

# the smallest image (px) each family runs on, body and head (measured: a batch of the size minus one stops in
# a pooling layer whose output would be empty); the loader checks every size of a recipe against it
MIN_SIZE = {"alexnet": 63, "squeezenet1_0": 21, "squeezenet1_1": 17, "vgg": 32, "resnet": 1, "densenet": 29}


def min_size(arch: str) -> int:
    return next(v for k, v in MIN_SIZE.items() if arch.startswith(k))


# where the numbers of a spec may lie, one definition each (``strict.build`` checks them)
AT_LEAST_1 = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1)
LEARNING_RATE = Range(0, 1, low_open=True)
DROPOUT = Range(0, 1, high_open=True)  # fastai's head: a probability of dropping, 1 would drop everything


@dataclass(frozen=True)
class Where:
    """Where the published figures stand in the report."""

    section: str
    pages: list[int] = ranged(AT_LEAST_1, default_factory=list)
    tables: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One ``fit_one_cycle`` call. ``lr`` is the max_lr; two values are fastai's ``slice(lo, hi)``."""

    name: str
    epochs: int = ranged(AT_LEAST_1)
    lr: float | tuple[float, float] = ranged(LEARNING_RATE)  # a pair: from lo to hi, lo below hi (the loader)
    frozen: bool
    size: int | None = ranged(AT_LEAST_1, default=None)  # progressive resizing: the image size of this stage
    table: str | None = None  # the published table this stage's epochs are compared with


@dataclass(frozen=True)
class FBeta:
    """The f_beta column: fastai v1 ``FBeta(beta=2)`` scored class index 1 ('hem', normal) by default."""

    beta: float = ranged(POSITIVE)
    positive: Literal["ALL", "normal"]


@dataclass(frozen=True)
class Prepare:
    """Section 3.2: crop to the informative part, histogram equalisation, resize (``data.prepare``)."""

    equalise: Literal["luma", "rgb", "none"] = "luma"
    resize: Literal["pad", "squash"] = "pad"
    crop_threshold: int = ranged(Range(0, 254), default=0)  # 255: no pixel could be above it


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
    max_rotate: float = ranged(Range(0, 180), default=10.0)  # degrees
    max_zoom: float = ranged(Range(1), default=1.1)
    max_warp: float = ranged(FRACTION, default=0.2)
    max_lighting: float = ranged(Range(0, 1, high_open=True), default=0.2)
    p_affine: float = ranged(FRACTION, default=0.75)
    p_lighting: float = ranged(FRACTION, default=0.75)


@dataclass(frozen=True)
class Recipe:
    arch: Arch
    pretrained: bool
    size: int = ranged(AT_LEAST_1)  # and at least the architecture's ``min_size`` (the loader)
    bs: int = ranged(Range(2))  # the head's BatchNorm needs two cells in a training batch
    split: Literal["random", "subject"]
    valid_size: int | float = ranged({int: AT_LEAST_1, float: Range(0, 1, True, True)})  # cells, or a fraction
    loss: Literal["cross_entropy", "weighted_cross_entropy"]
    dropout: float = ranged(DROPOUT)  # fastai head ``ps``
    wd: float = ranged(NON_NEGATIVE)
    f_beta: FBeta
    stages: list[Stage]
    lr_find: bool = False
    test: bool = True  # evaluate on the preliminary test set when the data has it
    prepare: Prepare = field(default_factory=Prepare)
    augment: Augmentation = field(default_factory=Augmentation)


@dataclass(frozen=True)
class KFold:
    """Fig 4.9: ``StratifiedKFold(n_splits=5, shuffle=True, random_state=1)``."""

    folds: int = ranged(Range(2))
    random_state: int = ranged(Range(0, 2**32 - 1))  # scikit-learn's seeds
    grouping: Literal["cells", "subjects"]
    carry_weights: bool  # the learner is created once and trained on fold after fold (Fig 4.9's code)
    # train only the first n folds of the split (the timing profile: 1); at most ``folds`` (the loader)
    trained_folds: int | None = ranged(AT_LEAST_1, default=None)


@dataclass(frozen=True)
class Bound:
    low: float
    high: float


@dataclass(frozen=True)
class Bayesian:
    """Fig 4.12: bayes_opt over dropout ``dp``, learning rate ``lr`` and weight decay ``wd``."""

    bounds: dict[str, Bound]  # dp, lr and wd, each within the range of what it sets (the loader)
    random_state: int = ranged(Range(0, 2**32 - 1))  # numpy's seeds
    init_points: int = ranged(NON_NEGATIVE)  # random probes; with the guided ones at least one (the loader)
    n_iter: int = ranged(NON_NEGATIVE)
    probe_epochs: int = ranged(AT_LEAST_1)
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
    page: int | None = ranged(AT_LEAST_1, default=None)
    stage: str | None = None  # the recipe stage it shows
    fold: int | None = ranged(NON_NEGATIVE, default=None)  # k-fold: which fold (0-based)
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
    index: int = ranged(NON_NEGATIVE)
    target: str  # as printed, all digits
    dp: str
    lr: str
    wd: str


@dataclass(frozen=True)
class Published:
    tables: dict[str, PublishedTable] = field(default_factory=dict)
    test_accuracy: str | None = None  # as printed, e.g. "75.46%"
    lr_chosen: str | None = None  # the rate read off the lr-finder figure
    schedule: dict[int, int] = ranged(AT_LEAST_1, default_factory=dict)  # Table 4.5: image size -> epochs
    bayesian: list[BayesIteration] = field(default_factory=list)
    bayesian_best: int | None = ranged(NON_NEGATIVE, default=None)  # the index of the iteration the report calls best
    statements: list[str] = field(default_factory=list)  # sentences of the report this spec checks
    notes: list[str] = field(default_factory=list)  # oddities kept visible, not fixed


@dataclass(frozen=True)
class Tolerance:
    """How far a reproduced figure may lie from the published one and still be called reproduced."""

    accuracy: float = ranged(FRACTION, default=0.03)
    f_beta: float = ranged(FRACTION, default=0.05)
    test_accuracy: float = ranged(FRACTION, default=0.05)


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
