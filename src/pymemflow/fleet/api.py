"""``pymemflow.fleet(targets, command, **opts)``: the same command over many targets, from Python."""

from __future__ import annotations

import shlex
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from .cluster import FleetOptions, run_fleet
from .runner import TargetResult, parse_command, run_target
from .targets import Target, as_targets


def command_argv(command: str | Sequence[str]) -> list[str]:
    """``"modules -p explorer.exe"`` or ``["modules", "-p", "explorer.exe"]`` -> CLI argv."""
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


class FleetRecords:
    """An iterator of plain-dict records (``target`` first; a failed target adds a record with
    ``target`` and ``error``), produced as targets finish. ``results`` holds each finished target's
    :class:`TargetResult`; ``failed`` the failed ones. Closing it (or leaving a ``with`` block)
    stops the run and shuts down the local cluster."""

    def __init__(self, targets: list[Target], command: list[str], opts: FleetOptions) -> None:
        self.targets = targets
        self.command = command
        self.results: list[TargetResult] = []
        self._gen = self._records(run_fleet(targets, command, opts))

    def _records(self, results: Iterator[TargetResult]) -> Generator[dict[str, Any], None, None]:
        try:
            for res in results:
                self.results.append(res)
                yield from res.rows()
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> FleetRecords:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> FleetRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def failed(self) -> list[TargetResult]:
        return [r for r in self.results if not r.ok]


def _target_rows(target: Target, command: list[str], timeout: float | None, index: int,
                 retries: int) -> list[dict[str, Any]]:
    """One bag partition: the target's rows, every row with an ``error`` key (None when it worked)
    so partitions line up as dataframe columns."""
    res = run_target(target, command, timeout, index)
    for attempt in range(2, retries + 2):
        if res.ok:
            break
        res = run_target(target, command, timeout, index)
        res.attempts = attempt
    rows = res.rows()
    for r in rows:
        r.setdefault("error", None)
    return rows


def fleet(targets: str | Target | Sequence[str | Target], command: str | Sequence[str], *, os: str | None = None,
          scheduler: str | None = None, workers: int | None = None, retries: int = 0,
          timeout: float | None = None, client: Any = None, output: str = "records") -> Any:
    """Run CLI ``command`` (``"ps"``, ``"modules -p explorer.exe"``) on every target.

    ``targets``: dump paths, globs, ``NAME:ARGS`` connector specs or chain strings
    (``"-c qemu:vm3 -o win32"``); ``os`` (``"win32"``) is added to targets without an OS layer.
    Runs on a local Dask cluster (``workers`` processes, default one per CPU), on ``scheduler``
    (``"tcp://host:8786"``), or on an existing ``client``.

    ``output="records"`` (default): a :class:`FleetRecords` iterator of dicts -- no pandas needed.
    ``output="bag"``: a lazy ``dask.bag`` of the same records (one partition per target; it
    computes on the current Dask scheduler, e.g. an open ``distributed.Client``).
    ``output="dataframe"``: that bag as a ``dask.dataframe`` (needs pandas; the columns are those of
    the first target that gives records, learnt by computing it once; ``object`` dtype).
    """
    argv = command_argv(command)
    tlist = as_targets(targets, os)
    opts = FleetOptions(scheduler=scheduler, workers=workers, retries=retries, timeout=timeout, client=client)
    if output == "records":
        return FleetRecords(tlist, argv, opts)
    if output not in ("bag", "dataframe"):
        raise ValueError(f"output must be 'records', 'bag' or 'dataframe', not {output!r}")
    opts.check()
    parse_command(argv)
    try:
        import dask
        import dask.bag as db
    except ImportError:
        raise ImportError("fleet(output='bag') needs Dask: pip install 'pymemflow[fleet]'") from None
    parts = [dask.delayed(_target_rows, pure=False)(t, argv, timeout, i, retries) for i, t in enumerate(tlist)]
    bag = db.from_delayed(parts)
    return _dataframe(bag) if output == "dataframe" else bag


def _dataframe(bag: Any) -> Any:
    """The bag as a dask dataframe whose columns are ``target``, the fields of the first target that
    gave records (computed once here to learn them), ``error``; every column of ``object`` dtype, so
    64-bit addresses, missing values and nested fields all fit."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("fleet(output='dataframe') needs pandas: pip install 'dask[dataframe]'") from None
    fields: list[str] = []
    for part in bag.to_delayed():
        good = [r for r in part.compute() if r.get("error") is None]
        if good:
            fields = [k for k in good[0] if k not in ("target", "error")]
            break
    meta = pd.DataFrame({c: pd.Series(dtype=object) for c in ["target", *fields, "error"]})
    return bag.to_dataframe(meta=meta)
