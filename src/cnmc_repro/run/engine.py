"""Runs specs: ``reproduce run ID...`` and ``reproduce all``.

For each seed and each spec it resolves the profile, computes the run key, skips a finished run with the
same key (unless forced), and otherwise trains and stores the run: one run per (spec, seed), seed after seed,
ensemble members before their ensemble (which combines the members' runs of its own seed). Every run also
gets a series key, the same hash without the seed, that groups the runs of one recipe across seeds.
Interrupting loses at most the run in progress, and of a run made of several parts (folds, probes, image
sizes) only the part in progress: finished runs and parts stay, and the next invocation continues.

One (spec, seed) run is a :class:`Task`, and :meth:`Engine.run_one` makes it idempotently, under its run
key's lock: it finds a finished run, or the finished parts of an interrupted one, and trains only what is
left, so that several processes, or the Ray tasks of ``executors``, share one results folder and train
each run key once. The executor decides where the tasks run: one after another here (``local``), or as
Ray tasks on the GPUs of a machine or a cluster (``ray``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from cnmc_repro.errors import UserError
from cnmc_repro.paths import project_root
from cnmc_repro.progress import Progress
from cnmc_repro.run.keys import code_version, data_fingerprint, run_key
from cnmc_repro.run.precision import resolve_precision
from cnmc_repro.spec.load import load_all, planned_epochs, resolve_ids
from cnmc_repro.spec.profiles import Profile, get_profile, resolve
from cnmc_repro.spec.schema import Spec
from cnmc_repro.spec.strict import to_plain
from cnmc_repro.store.augmentation import write_draws
from cnmc_repro.store.environment import environment
from cnmc_repro.store.folders import Store
from cnmc_repro.store.record import RunRecord


@dataclass
class Options:
    data: str | None = None
    profile: str | None = None  # default: full with --data, smoke on the built-in data
    device: str = "auto"
    precision: str | None = None  # fp32 or bf16; default bf16 on a GPU, fp32 on a CPU
    seeds: tuple[int, ...] = (0,)  # one run of every spec per seed
    force: bool = False
    pretrained: bool = True
    results: Path = field(default_factory=lambda: project_root() / "results")
    deterministic: bool = False
    skip_bad: bool = False
    quiet: bool = False
    interrupt_after_epochs: int | None = None  # tests: stand-in for Ctrl-C
    executor: str = "local"  # local: the runs one after another in this process; ray: one Ray task per run
    address: str | None = None  # the Ray cluster to use (ray start's address); None starts Ray on this machine
    threads: int | None = None  # torch's threads in a CPU run; None: torch's default, the machine's cores
    # tests: what each Ray task asks for instead of one GPU (CUDA) or `threads` CPUs, e.g. logical GPUs while
    # the tasks train on the CPU, to check the placement on a machine without GPUs
    task_resources: dict[str, float] | None = None


@dataclass
class RunStatus:
    """What became of one (spec, seed) in an invocation: trained now, or an earlier finished run reused."""

    spec_id: str
    seed: int
    run_dir: Path
    ran: bool  # False when an earlier finished run was reused
    seconds: float
    started: float = 0.0  # time.time() when this invocation took the run up
    finished: float = 0.0  # and when it was trained and stored, or found finished


@dataclass(frozen=True)
class Task:
    """One (spec, seed) run of an invocation: its run key, its work for the time estimate (epochs weighted by
    pixels) and, for an ensemble, its members' run keys of the same seed."""

    spec_id: str
    seed: int
    key: str
    units: float
    members: tuple[str, ...] = ()
    since: float = 0.0  # time.time() when the invocation began: with --force, runs finished since are kept

    @property
    def label(self) -> str:
        return f"{self.spec_id} seed {self.seed}"


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but no CUDA GPU is visible; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}; use cpu, cuda or cuda:N")
    return name


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: a count (``"5"``: seeds 0 to 4) or a list (``"0,3,7"``; ``"7,"`` is seed 7 alone)."""
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise UserError(
            f"--seeds {text!r} is neither a count of seeds (5: seeds 0 to 4) nor a list of seeds (0,3,7); "
            "give one of them, or --seed N for one seed"
        )
    return tuple(dict.fromkeys(seeds))


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
        import torch

        from cnmc_repro.data.source import open_dataset
        from cnmc_repro.run.executors import executor_for

        self.options = options
        self.executor = executor_for(options)  # Ray: installed and connected before any data is read
        self.specs = load_all()
        self.device = self.executor.device(options.device)
        self.precision = resolve_precision(options.precision, self.device)
        self.dataset = open_dataset(options.data, progress=not options.quiet)
        self.profile: Profile = get_profile(options.profile or ("full" if options.data else "smoke"))
        if options.threads is not None and options.threads < 1:
            raise UserError(f"--threads {options.threads} is not a number of threads; give 1 or more")
        self.threads = options.threads or torch.get_num_threads()
        self.store = Store(options.results)
        self.fingerprint = data_fingerprint(self.dataset)
        self.code = code_version()
        self._parts: dict[str, dict] = {}
        self._ctx = None

    def resolved(self, spec_id: str) -> Spec:
        from cnmc_repro.run.models import weights_file

        return resolve(self.specs[spec_id], self.profile, self.options.pretrained, lambda a: weights_file(a).is_file())

    def _recipe_parts(self, spec_id: str) -> dict:
        """Everything that decides a run's figures but its seed (and, for an ensemble, its members)."""
        if spec_id not in self._parts:
            self._parts[spec_id] = {
                "spec": to_plain(self.resolved(spec_id)) | {"path": None},
                "profile": self.profile.name,
                "data": self.fingerprint,
                "code": self.code,
                "device": self.device.split(":")[0],
                "precision": self.precision,
                "deterministic": self.options.deterministic,
                "skip_bad": self.options.skip_bad,
            }
            if self.device == "cpu":  # a CPU's sums are split among the threads: their number moves the last digits
                self._parts[spec_id]["threads"] = self.threads
        return self._parts[spec_id]

    def _members(self, spec_id: str) -> list[str]:
        spec = self.specs[spec_id]
        return [m for combo in spec.ensemble.combinations for m in combo] if spec.ensemble else []

    def key(self, spec_id: str, seed: int) -> str:
        """The run key: the recipe's parts and the seed; an ensemble's holds its members' run keys of the seed."""
        parts = self._recipe_parts(spec_id) | {"seed": seed}
        if members := self._members(spec_id):
            parts["members"] = [self.key(m, seed) for m in members]
        return run_key(parts)

    def series_key(self, spec_id: str) -> str:
        """The series key: the run key without the seed; an ensemble's holds its members' series keys."""
        parts = dict(self._recipe_parts(spec_id))
        if members := self._members(spec_id):
            parts["members"] = [self.series_key(m) for m in members]
        return run_key(parts)

    def tasks(self, ids: list[str]) -> list[Task]:
        """The (spec, seed) runs of ``ids``, seed after seed (the first seed's runs give a whole report early,
        each further seed adds to the spread), ensemble members before their ensemble."""
        ids = order_with_members(resolve_ids(ids, self.specs), self.specs)
        units = {i: sum(e * (s / 64) ** 2 for e, s in planned_epochs(self.resolved(i))) for i in ids}
        since = time.time()
        return [
            Task(i, seed, self.key(i, seed), units[i], tuple(self.key(m, seed) for m in self._members(i)), since)
            for seed in self.options.seeds
            for i in ids
        ]

    def run(self, ids: list[str]) -> list[RunStatus]:
        opts = self.options
        try:
            tasks = self.tasks(ids)
            progress = Progress(sum(t.units for t in tasks), len(tasks), quiet=opts.quiet)
            if self.dataset.synthetic:
                progress.say(
                    "SYNTHETIC DATA: built-in cells, not C-NMC; the figures cannot be compared with the report."
                )
            self.store.root.mkdir(parents=True, exist_ok=True)
            if removed := self.store.sweep():
                progress.say(f"removed {removed} unfinished run folder(s) or file(s) whose writer is gone")
            seeds = ", ".join(map(str, opts.seeds))
            threads = f", {self.threads} thread{'s' if self.threads > 1 else ''} a run" if self.device == "cpu" else ""
            progress.say(
                f"profile {self.profile.name}, seed{'s' if len(opts.seeds) > 1 else ''} {seeds}, "
                f"device {self.device} ({self.precision}{threads}), data {self.dataset.root}, results {self.store.root}"
            )
            outcomes = self.executor.run(self, tasks, progress)
            if any(o.ran for o in outcomes):  # the report's picture of the augmentation, on this data
                from cnmc_repro.run.context import augmentation_draws

                if draws := augmentation_draws(self.dataset):
                    write_draws(self.store.root, draws)
            return outcomes
        finally:
            self.executor.close()

    def finished(self, task: Task) -> Path | None:
        """The finished run of ``task`` to reuse: any with its key, or with --force one finished since the
        invocation began (by another process; this one trains each of its runs once)."""
        done = self.store.find(task.key)
        if done is None or not self.options.force:
            return done
        return done if (done / "result.json").stat().st_mtime >= task.since else None

    def run_one(self, task: Task, progress, wait: bool = True, where: str = "") -> RunStatus | None:
        """Makes one (spec, seed) run, idempotently: a finished run is reused; otherwise, under the run key's
        lock, the run is trained (going on from the finished parts an interrupted one left) and stored once.
        A key another process holds is waited for, or with ``wait=False`` left (None) to be taken up later.
        ``progress`` is the invocation's :class:`~cnmc_repro.progress.Progress` or anything with its methods
        (the relay of a Ray task); ``where`` says where the run trains, after its title."""
        started = time.time()
        if (done := self.finished(task)) is not None:
            progress.skip_run(task.label, f"up to date ({done.name}); --force reruns it", task.units)
            return RunStatus(task.spec_id, task.seed, done, False, 0.0, started, started)
        lock = self.store.lock(task.key, task.label)
        if not lock.acquire():
            holder = lock.holder()
            who = f"another process ({holder.describe()})" if holder else "another process"
            if not wait:
                progress.say(f"{task.label}: {who} is running it; taken up again after the other runs")
                return None
            progress.say(f"waiting for {task.label}: {who} is running it")
            lock.wait()
        try:
            if (done := self.finished(task)) is not None:  # finished by the process that held the key
                self.store.parts(task.key).clear()  # in case its holder stopped right after storing it
                progress.skip_run(task.label, f"finished by another process ({done.name})", task.units)
                return RunStatus(task.spec_id, task.seed, done, False, 0.0, started, time.time())
            progress.start_run(task.label, self.specs[task.spec_id].title + (f" ({where})" if where else ""))
            with self._threads():
                status = self._execute(task, progress)
            return replace(status, started=started, finished=time.time())
        finally:
            lock.release()

    @contextmanager
    def _threads(self) -> Iterator[None]:
        """torch's threads for a CPU run, as the run key records them; as they were afterwards."""
        import torch

        before = torch.get_num_threads()
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _context(self, seed: int):
        """The context of the runs of ``seed``: the first is made here, the next seed's from the one before."""
        from cnmc_repro.run.context import Context

        if self._ctx is not None and self._ctx.seed != seed:
            self._ctx = self._ctx.for_seed(seed)
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
                seed,
                torch.device(self.device),
                precision=self.precision,
                workdir=tempfile.mkdtemp(prefix="cnmc-fastai-"),
                on_epoch=lambda r: None,
                skip_bad=self.options.skip_bad,
                interrupt_after_epochs=self.options.interrupt_after_epochs,
            )
        return self._ctx

    def _execute(self, task: Task, progress) -> RunStatus:
        import torch

        from cnmc_repro.run import experiments

        spec_id, seed, key = task.spec_id, task.seed, task.key
        spec = self.resolved(spec_id)
        series = self.series_key(spec_id)
        writer = self.store.begin(spec_id, self.profile.name, seed, key)
        writer.json(
            "spec.json",
            {"run_key": key, "series_key": series, "profile": self.profile.name, "seed": seed, "spec": to_plain(spec)},
        )
        writer.json("environment.json", environment(self.device))
        t0 = time.perf_counter()
        extra: dict = {}
        try:
            if spec.kind == "ensemble":
                members = {m: self.store.record(self.store.find(self.key(m, seed))) for m in self._members(spec_id)}
                outcome = experiments.run_ensemble(spec, members)
            else:
                ctx = self._context(seed)

                def on_epoch(record: dict, replayed: bool = False) -> None:
                    record = {"spec": spec_id, **record}
                    writer.epoch(record)
                    size = record.get("size") or spec.recipe.size
                    if replayed:  # trained by the interrupted run: no time spent on it now
                        progress.skip_units((size / 64) ** 2)
                        return
                    where = " ".join(f"{k} {record[k]}" for k in ("fold", "probe", "stage") if k in record)
                    units = (size / 64) ** 2
                    progress.epoch(task.label, where, record["epoch"], record.get("epochs", 0), record, units)

                ctx.on_epoch = on_epoch
                if self.options.force:  # redo all of it
                    writer.parts.clear()
                if kept := writer.parts.count():
                    progress.note(f"{task.label}: going on from an interrupted run: {kept} finished part(s) kept")
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
            series_key=series,
            spec=spec_id,
            kind=spec.kind,
            profile=self.profile.name,
            seed=seed,
            device=self.device,
            precision=self.precision,
            pretrained=bool(spec.recipe and spec.recipe.pretrained),
            synthetic=self.dataset.synthetic,
            data_root=str(self.dataset.root),
            data_fingerprint=self.fingerprint,
            seconds=seconds,
            **extra,
        )
        final = writer.finish(record)
        progress.note(f"{task.label} done in {seconds:.1f}s -> {final}")
        return RunStatus(spec_id, seed, final, True, seconds)


def run(ids: list[str] | None, options: Options) -> list[RunStatus]:
    specs = load_all()
    ids = resolve_ids(ids, specs) if ids else list(specs)  # an unknown table stops before any data is read
    return Engine(options).run(ids)
