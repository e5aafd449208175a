"""Runs specs: ``reproduce run ID...`` and ``reproduce all``.

For each spec it resolves the profile, computes the run key, skips a finished run with the same key
(unless forced), and otherwise trains and stores the run. Ensemble members run before their ensemble.
Interrupting loses at most the run in progress, and of a run made of several parts (folds, probes, image
sizes) only the part in progress: finished runs and parts stay, and the next invocation continues.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cnmc_repro.errors import UserError
from cnmc_repro.paths import project_root
from cnmc_repro.progress import Progress
from cnmc_repro.run.keys import code_version, data_fingerprint, run_key
from cnmc_repro.spec.load import load_all, planned_epochs, resolve_ids
from cnmc_repro.spec.profiles import Profile, get_profile, resolve
from cnmc_repro.spec.schema import Spec
from cnmc_repro.spec.strict import to_plain
from cnmc_repro.store.environment import environment
from cnmc_repro.store.folders import Store
from cnmc_repro.store.record import RunRecord


@dataclass
class Options:
    data: str | None = None
    profile: str | None = None  # default: full with --data, smoke on the built-in data
    device: str = "auto"
    seed: int = 0
    force: bool = False
    pretrained: bool = True
    results: Path = field(default_factory=lambda: project_root() / "results")
    deterministic: bool = False
    skip_bad: bool = False
    quiet: bool = False
    interrupt_after_epochs: int | None = None  # tests: stand-in for Ctrl-C


@dataclass
class RunStatus:
    """What became of one spec in an invocation: trained now, or an earlier finished run reused."""

    spec_id: str
    run_dir: Path
    ran: bool  # False when an earlier finished run was reused
    seconds: float


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but no CUDA GPU is visible; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}; use cpu, cuda or cuda:N")
    return name


def order_with_members(ids: list[str], specs: dict[str, Spec]) -> list[str]:
    """Ensemble members first (a missing member is trained first), each spec once."""
    out: list[str] = []
    for i in ids:
        spec = specs[i]
        if spec.ensemble:
            for combo in spec.ensemble.combinations:
                out += [m for m in combo if m not in out]
        if i not in out:
            out.append(i)
    return out


class Engine:
    def __init__(self, options: Options):
        from cnmc_repro.data.source import open_dataset

        self.options = options
        self.specs = load_all()
        self.dataset = open_dataset(options.data, progress=not options.quiet)
        self.profile: Profile = get_profile(options.profile or ("full" if options.data else "smoke"))
        self.device = resolve_device(options.device)
        self.store = Store(options.results)
        self.fingerprint = data_fingerprint(self.dataset)
        self.code = code_version()
        self._keys: dict[str, str] = {}
        self._ctx = None

    def resolved(self, spec_id: str) -> Spec:
        from cnmc_repro.run.models import weights_file

        return resolve(self.specs[spec_id], self.profile, self.options.pretrained, lambda a: weights_file(a).is_file())

    def key(self, spec_id: str) -> str:
        if spec_id not in self._keys:
            spec = self.resolved(spec_id)
            parts = {
                "spec": to_plain(spec) | {"path": None},
                "profile": self.profile.name,
                "seed": self.options.seed,
                "data": self.fingerprint,
                "code": self.code,
                "device": self.device.split(":")[0],
                "deterministic": self.options.deterministic,
                "skip_bad": self.options.skip_bad,
            }
            if spec.ensemble:
                parts["members"] = [self.key(m) for combo in spec.ensemble.combinations for m in combo]
            self._keys[spec_id] = run_key(parts)
        return self._keys[spec_id]

    def run(self, ids: list[str]) -> list[RunStatus]:
        opts = self.options
        ids = order_with_members(resolve_ids(ids, self.specs), self.specs)
        units = {i: sum(e * (s / 64) ** 2 for e, s in planned_epochs(self.resolved(i))) for i in ids}
        progress = Progress(sum(units.values()), len(ids), quiet=opts.quiet)
        if self.dataset.synthetic:
            progress.say("SYNTHETIC DATA: built-in cells, not C-NMC; the figures cannot be compared with the report.")
        removed = self.store.clear_partial()
        if removed:
            progress.say(f"removed {removed} unfinished run folder(s) left by an interrupted invocation")
        progress.say(
            f"profile {self.profile.name}, seed {opts.seed}, device {self.device}, data {self.dataset.root}, "
            f"results {self.store.root}"
        )
        outcomes = []
        for spec_id in ids:
            key = self.key(spec_id)
            done = None if opts.force else self.store.find(key)
            if done is not None:
                progress.skip_run(spec_id, f"up to date ({done.name}); --force reruns it", units[spec_id])
                outcomes.append(RunStatus(spec_id, done, False, 0.0))
                continue
            progress.start_run(spec_id, self.specs[spec_id].title)
            outcomes.append(self._execute(spec_id, key, progress, units[spec_id]))
        return outcomes

    def _context(self):
        from cnmc_repro.run.context import Context

        if self._ctx is None:
            import torch

            torch.backends.cudnn.benchmark = not self.options.deterministic
            if self.options.deterministic:
                import os

                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.deterministic = True
                torch.use_deterministic_algorithms(True, warn_only=True)
            self._ctx = Context(
                self.dataset,
                self.profile,
                self.options.seed,
                torch.device(self.device),
                workdir=tempfile.mkdtemp(prefix="cnmc-fastai-"),
                on_epoch=lambda r: None,
                skip_bad=self.options.skip_bad,
                interrupt_after_epochs=self.options.interrupt_after_epochs,
            )
        return self._ctx

    def _execute(self, spec_id: str, key: str, progress: Progress, units: float) -> RunStatus:
        import torch

        from cnmc_repro.run import experiments

        spec = self.resolved(spec_id)
        writer = self.store.begin(spec_id, self.profile.name, self.options.seed, key)
        writer.json(
            "spec.json",
            {"run_key": key, "profile": self.profile.name, "seed": self.options.seed, "spec": to_plain(spec)},
        )
        writer.json("environment.json", environment(self.device))
        t0 = time.perf_counter()
        extra: dict = {}
        try:
            if spec.kind == "ensemble":
                members = {
                    m: self.store.record(self.store.find(self.key(m)))
                    for combo in spec.ensemble.combinations
                    for m in combo
                }
                outcome = experiments.run_ensemble(spec, members)
            else:
                ctx = self._context()

                def on_epoch(record: dict, replayed: bool = False) -> None:
                    record = {"spec": spec_id, **record}
                    writer.epoch(record)
                    size = record.get("size") or spec.recipe.size
                    if replayed:  # trained by the interrupted run: no time spent on it now
                        progress.skip_units((size / 64) ** 2)
                        return
                    where = " ".join(f"{k} {record[k]}" for k in ("fold", "probe", "stage") if k in record)
                    progress.epoch(where, record["epoch"], record.get("epochs", 0), record, (size / 64) ** 2)

                ctx.on_epoch = on_epoch
                if self.options.force:  # redo all of it
                    writer.parts.clear()
                if kept := writer.parts.count():
                    progress.note(f"going on from an interrupted run: {kept} finished part(s) kept")
                if self.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                prepared_before = ctx.prepare_seconds
                outcome = experiments.RUNNERS[spec.kind](spec, ctx, writer)
                extra["prepare_seconds"] = ctx.prepare_seconds - prepared_before  # cells read or prepared
                if self.device.startswith("cuda"):
                    extra["peak_gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated())
        except BaseException:
            writer.abandon()
            raise
        seconds = time.perf_counter() - t0
        record = RunRecord.of(
            outcome,
            run_id=writer.run_id,
            run_key=key,
            spec=spec_id,
            kind=spec.kind,
            profile=self.profile.name,
            seed=self.options.seed,
            device=self.device,
            pretrained=bool(spec.recipe and spec.recipe.pretrained),
            synthetic=self.dataset.synthetic,
            data_root=str(self.dataset.root),
            data_fingerprint=self.fingerprint,
            seconds=seconds,
            **extra,
        )
        final = writer.finish(record)
        progress.note(f"done in {seconds:.1f}s -> {final}")
        return RunStatus(spec_id, final, True, seconds)


def run(ids: list[str] | None, options: Options) -> list[RunStatus]:
    specs = load_all()
    ids = resolve_ids(ids, specs) if ids else list(specs)  # an unknown table stops before any data is read
    return Engine(options).run(ids)
