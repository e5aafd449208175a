"""Where the engine's runs train: ``local`` (the default), one after another in this process, or ``ray``, one
Ray task per (spec, seed) run on the GPUs of this machine or of a Ray cluster.

Both make each run through :meth:`Engine.run_one`, under its run key's lock, so that several invocations
(or a retried Ray task) share one results folder and train each key once.

``ray``: the driver (this process) keys the runs, skips the finished ones and sends each other as a task
that asks for one GPU on CUDA (Ray places it on a free GPU and sets ``CUDA_VISIBLE_DEVICES``), or on a CPU
for as many CPUs as the run's torch threads, so that a machine of C cores trains C // threads runs at once
without sharing a core between two runs' threads. A task builds its own engine on its node from the same
options and checks that its run key is the driver's (the same code, specs and data) before it trains; the
results folder and the data must be at the same path on every node (a shared filesystem), which the task
checks first. A task Ray retries (its worker or node lost) finds the finished parts and goes on from them.
Ensembles run on the driver once their members' runs are stored. The tasks' progress (each epoch as it
finishes) comes back through a Ray queue and is shown by the driver's ``Progress`` with the time left.
Ctrl-C cancels the tasks; finished runs and finished parts stay.
"""

from __future__ import annotations

import os
import platform
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cnmc_repro.errors import UserError
from cnmc_repro.progress import Progress
from cnmc_repro.run.engine import Options, RunStatus, Task, resolve_device

INSTALL_RAY = "--executor ray needs Ray, which is not installed here: pip install -e '.[ray]'"
# passed to every task, so that a worker reads the same specs and cache as the driver
ENV = ("CNMC_REPRO_CACHE", "CNMC_REPRO_SPECS")


def executor_for(options: Options) -> LocalExecutor | RayExecutor:
    if options.executor == "local":
        return LocalExecutor()
    if options.executor == "ray":
        return RayExecutor(options.address)
    raise UserError(f"unknown executor {options.executor!r}; use local or ray")


class LocalExecutor:
    """The runs one after another in this process. A run another process holds is left for later and the next
    ones are made first; at the end the ones left are waited for (and then found finished)."""

    def device(self, name: str) -> str:
        return resolve_device(name)

    def run(self, engine, tasks: list[Task], progress: Progress) -> list[RunStatus]:
        statuses: dict[Task, RunStatus] = {}
        later: list[Task] = []
        for task in tasks:
            if any(m in {t.key for t in later} for m in task.members):
                later.append(task)  # after its members
            elif (status := engine.run_one(task, progress, wait=False)) is None:
                later.append(task)
            else:
                statuses[task] = status
        for task in later:
            statuses[task] = engine.run_one(task, progress, wait=True)
        return [statuses[t] for t in tasks]

    def close(self) -> None:
        pass


class RayExecutor:
    """One Ray task per run, on a Ray instance started here (``address`` None) or the cluster at ``address``."""

    def __init__(self, address: str | None):
        try:
            import ray
        except ImportError:
            raise UserError(INSTALL_RAY) from None
        self.ray = ray
        self.started = not ray.is_initialized()  # tests start one of their own
        t0 = time.perf_counter()
        if self.started:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            except ConnectionError as e:
                raise UserError(f"cannot reach the Ray cluster at {address}: {e}; check --address") from None
        self.start_seconds = time.perf_counter() - t0
        self.gpus = ray.cluster_resources().get("GPU", 0)

    def device(self, name: str) -> str:
        """``auto`` is CUDA where the cluster has GPUs; CUDA runs on the GPU Ray gives each task."""
        if name == "auto":
            return "cuda" if self.gpus else "cpu"
        if name.startswith("cuda"):
            if not self.gpus:
                raise UserError(f"device {name!r} was asked for but the Ray cluster has no GPU; use --device cpu")
            return "cuda"
        return resolve_device(name)

    def resources(self, engine) -> dict[str, float]:
        if engine.options.task_resources is not None:
            return dict(engine.options.task_resources)
        return {"num_gpus": 1, "num_cpus": 1} if engine.device == "cuda" else {"num_cpus": engine.threads}

    def run(self, engine, tasks: list[Task], progress: Progress) -> list[RunStatus]:
        from ray.util.queue import Queue

        ray = self.ray
        progress.say(
            f"Ray: {ray.cluster_resources().get('CPU', 0):g} CPUs and {self.gpus:g} GPUs, each run asks for "
            f"{self.resources(engine)}" + (f"; started here in {self.start_seconds:.1f}s" if self.started else "")
        )
        options = worker_options(engine)
        env = {k: str(Path(os.environ[k]).resolve()) for k in ENV if k in os.environ}
        queue = Queue(actor_options={"num_cpus": 0})
        remote = ray.remote(ray_task).options(
            runtime_env={"env_vars": env},
            max_retries=3,  # a lost worker or node: the retry goes on from the finished parts
            **self.resources(engine),
        )
        statuses: dict[Task, RunStatus] = {}
        pending: dict[Any, Task] = {}
        ensembles = [t for t in tasks if t.members]
        for task in tasks:
            if task.members:
                continue
            if engine.finished(task) is not None:  # no task for a finished run
                statuses[task] = engine.run_one(task, progress)
            else:
                pending[remote.remote(options, task, queue)] = task
        # Ctrl-C only sets a flag that the loop reads between waits: raised inside Ray's own calls, where Ray checks
        # for signals, a KeyboardInterrupt was seen to be lost (the driver went on to the end and exited 0)
        interrupted = threading.Event()
        main = threading.current_thread() is threading.main_thread()  # only the main thread may set a handler
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set()) if main else None
        try:
            while pending or ensembles:
                if interrupted.is_set():
                    raise KeyboardInterrupt
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5) if pending else ([], [])
                relay(queue, progress)
                for ref in ready:
                    statuses[pending.pop(ref)] = self._result(ref)
                stored = {t.key for t in statuses}
                for task in [t for t in ensembles if set(t.members) <= stored]:
                    statuses[task] = engine.run_one(task, progress)  # on the driver, after its members
                    ensembles.remove(task)
        except BaseException:
            if pending:
                for ref in pending:
                    ray.cancel(ref)  # a KeyboardInterrupt in the task: it lets its lock go, its finished parts stay
                ray.wait(list(pending), num_returns=len(pending), timeout=30)
                relay(queue, progress)
            raise
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            queue.shutdown()
        return [statuses[t] for t in tasks]

    def _result(self, ref) -> RunStatus:
        """A task's result; its one-sentence error as it was raised on the worker."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, UserError):
                raise e.cause from None
            raise

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def worker_options(engine) -> Options:
    """The options a task's engine is built from: the driver's, resolved (profile, device, threads, absolute
    paths: a worker's working folder is not the driver's), quiet. The built-in data is made anew in each
    node's cache (the run key check finds any difference)."""
    data = engine.options.data
    return replace(
        engine.options,
        executor="local",
        address=None,
        quiet=True,
        profile=engine.profile.name,
        device=engine.device,
        threads=engine.threads,
        results=Path(engine.options.results).resolve(),
        data=str(Path(data).resolve()) if data else None,
    )


class Relay:
    """A task's calls to ``Progress``, sent through a Ray queue to the driver, which makes them on its own.

    Each call is sent without waiting for the queue's answer (an actor runs one caller's calls in the order
    they were sent): a task that blocks in ``ray.get`` lends its CPUs back to Ray while it waits, and Ray
    would start another run on them (three one-thread runs on two cores were seen with ``Queue.put``)."""

    def __init__(self, queue):
        self.queue = queue
        self.last = None  # the last call sent: the actor makes it after all the others

    def __getattr__(self, name: str):
        if not hasattr(Progress, name):
            raise AttributeError(name)
        return lambda *args: self._send(name, args)

    def _send(self, name: str, args: tuple) -> None:
        self.last = self.queue.actor.put_nowait.remote((name, args))

    def flush(self) -> None:
        """Waits until every call sent is in the queue, so that the driver, once it sees the task finished, has
        them all (the run's last line, "done in", was seen lost when the driver stopped at the task's end)."""
        if self.last is not None:
            import ray

            try:
                ray.get(self.last)
            except ray.exceptions.RayError:  # the driver has gone, and its queue with it
                pass


def relay(queue, progress: Progress) -> None:
    """Makes the progress calls the tasks have sent so far."""
    if n := queue.qsize():
        for name, args in queue.get_nowait_batch(n):
            getattr(progress, name)(*args)


_ENGINES: dict[str, Any] = {}  # a worker's engine, kept for the next task with the same options


def ray_task(options: Options, task: Task, queue) -> RunStatus:
    """One (spec, seed) run on a Ray worker."""
    from cnmc_repro.run.engine import Engine

    check_visible(options)
    key = repr((options, {k: os.environ.get(k) for k in ENV}))
    if key not in _ENGINES:
        _ENGINES[key] = Engine(options)
    engine = _ENGINES[key]
    if engine.key(task.spec_id, task.seed) != task.key:
        raise UserError(
            f"{platform.node()} computes another run key for {task.label} than the driver: its code, specs or data "
            "differ; install the same checkout on every node and put the data at the same path"
        )
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f"on {platform.node()}" + (f", CUDA_VISIBLE_DEVICES={gpus}" if gpus else "")
    progress = Relay(queue)
    try:
        return engine.run_one(task, progress, wait=True, where=where)
    finally:
        progress.flush()


def check_visible(options: Options) -> None:
    """The results folder and the data must be at the same path on the node of a task as on the driver."""
    for what, path in (("results folder", options.results), ("data folder", options.data)):
        if path is not None and not Path(path).is_dir():
            raise UserError(
                f"{platform.node()} cannot see the {what} {path}: with --executor ray the results folder and the "
                "data must be at the same path on every node (a shared filesystem)"
            )
