"""Fan a command out over targets on Dask (``dask.distributed``) and hand back results as they finish.

By default a local cluster of worker processes (one single-threaded worker per usable CPU: the work
is Python and NumPy holding the GIL, so processes, not threads, run targets side by side); with a
scheduler address, an existing cluster whose workers have pymemflow installed and see the targets.

What Dask gives us and we do not rebuild: a worker that dies has its tasks rescheduled on the others
(the scheduler's own bookkeeping; after ``distributed.scheduler.allowed-failures`` deaths a task is
reported as ``KilledWorker``). What we add: a target whose command failed (or whose task was lost)
is resubmitted up to ``retries`` times, and every target ends as exactly one :class:`TargetResult`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ArgumentError, PymemflowError
from .runner import TargetResult, describe_error, parse_command, run_target
from .targets import Target

log = logging.getLogger(__name__)


class FleetError(PymemflowError):
    """The fleet as a whole cannot run (no Dask, scheduler unreachable) -- not one target's failure."""


@dataclass
class FleetOptions:
    """``scheduler``: ``tcp://host:8786`` (None: a local cluster of ``workers`` processes, default one
    per usable CPU); ``retries``: extra attempts for a failed target; ``timeout``: seconds per attempt."""

    scheduler: str | None = None
    workers: int | None = None
    retries: int = 0
    timeout: float | None = None
    client: Any = None
    """An existing ``distributed.Client`` to use instead (left open)."""

    def check(self) -> None:
        if self.retries < 0:
            raise ArgumentError(f"fleet: --retries must be >= 0, not {self.retries}")
        if self.timeout is not None and self.timeout <= 0:
            raise ArgumentError(f"fleet: --timeout must be > 0 seconds, not {self.timeout:g}")
        if self.workers is not None and self.workers < 1:
            raise ArgumentError(f"fleet: --workers must be >= 1, not {self.workers}")
        if self.workers is not None and (self.scheduler or self.client is not None):
            raise ArgumentError("fleet: --workers sizes the local cluster; with --scheduler the cluster has "
                                "its own workers")


def usable_cpus() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise FleetError("fleet needs Dask: pip install 'pymemflow[fleet]' (dask[distributed])") from None
    return distributed


def quiet_dask() -> None:
    """Dask logs INFO lines of its own on import; ours are shown by -v levels, theirs from -vv on."""
    level = logging.getLogger().getEffectiveLevel()
    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING) if level > logging.INFO else level)


class Cluster:
    """A connected ``distributed.Client`` (and the local cluster it started, if any); a context manager."""

    def __init__(self, opts: FleetOptions) -> None:
        self.opts = opts
        self.client: Any = None
        self.local: Any = None

    def __enter__(self) -> Cluster:
        dd = _distributed()
        quiet_dask()
        if self.opts.client is not None:
            self.client = self.opts.client
            return self
        try:
            if self.opts.scheduler:
                self.client = dd.Client(self.opts.scheduler, timeout="15s", set_as_default=False)
                self._wait_for_a_worker()
            else:
                # memory_limit=0: a worker's RSS grows with the mmap'ed dump pages it touches; that is
                # page cache, not a leak, and must not get the worker restarted by its nanny.
                self.local = dd.LocalCluster(n_workers=self.opts.workers or usable_cpus(), threads_per_worker=1,
                                             processes=True, memory_limit=0, host="127.0.0.1",
                                             scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR)
                self.client = dd.Client(self.local, set_as_default=False)
        except (OSError, TimeoutError) as e:
            self.__exit__()
            where = self.opts.scheduler or "a local cluster"
            raise FleetError(f"fleet: cannot start or reach the Dask scheduler ({where}): {e}") from None
        return self

    def _wait_for_a_worker(self, seconds: float = 60.0) -> None:
        """A scheduler without workers would hold the targets forever: wait a while, then say so."""
        if self.client.nthreads():
            return
        log.warning("fleet: the scheduler %s has no workers yet; waiting up to %g s", self.opts.scheduler, seconds)
        try:
            self.client.wait_for_workers(1, timeout=seconds)
        except TimeoutError:
            raise TimeoutError(f"no worker joined in {seconds:g} s") from None

    def __exit__(self, *exc: object) -> None:
        if self.opts.client is None and self.client is not None:
            self.client.close()
        if self.local is not None:
            self.local.close()
        self.client = self.local = None

    def slots(self) -> int:
        """Worker threads now in the cluster (what can run at once)."""
        try:
            return max(sum(self.client.nthreads().values()), 1)
        except Exception:  # a scheduler hiccup must not break the progress display
            return 1


def run_fleet(targets: Sequence[Target], command: Sequence[str], opts: FleetOptions,
              on_start: Callable[[Cluster], None] | None = None) -> Iterator[TargetResult]:
    """Yield one :class:`TargetResult` per target, in the order they finish."""
    opts.check()
    command = list(command)
    parse_command(command)  # a usage error stops here, before any cluster starts
    dd = _distributed()
    token = uuid.uuid4().hex[:12]
    with Cluster(opts) as cluster:
        if on_start is not None:
            on_start(cluster)
        client = cluster.client
        pending: dict[str, tuple[int, int, Any]] = {}

        def submit(i: int, attempt: int) -> Any:
            key = f"pymemflow-fleet-{token}-{i}-{attempt}"
            fut = client.submit(run_target, targets[i], command, opts.timeout, i, key=key, pure=False)
            pending[fut.key] = (i, attempt, fut)
            return fut

        queue = dd.as_completed([submit(i, 1) for i in range(len(targets))], loop=client.loop)
        try:
            for fut in queue:
                i, attempt, _ = pending.pop(fut.key)
                res = _result_of(fut, targets[i], i, dd)
                fut.release()
                res.attempts = attempt
                if not res.ok and attempt <= opts.retries:
                    log.info("fleet: %s failed (%s); attempt %d of %d", res.target, res.error, attempt + 1,
                             opts.retries + 1)
                    queue.add(submit(i, attempt + 1))
                    continue
                yield res
        finally:
            if pending:  # the caller stopped early (or failed): do not leave work on the cluster
                client.cancel([f for _, _, f in pending.values()])


def _result_of(fut: Any, target: Target, index: int, dd: Any) -> TargetResult:
    """The task's result, or a failed result saying why the task itself was lost."""
    try:
        res = fut.result()
        if isinstance(res, TargetResult):
            return res
        return TargetResult(target.label, index, error=f"internal error: the task returned {type(res).__name__}")
    except dd.KilledWorker as e:
        return TargetResult(target.label, index, error=f"the workers running it died ({e})")
    except Exception as e:  # unpicklable result, worker without pymemflow, cancelled task ...
        return TargetResult(target.label, index, error=f"task failed: {describe_error(e)}")
