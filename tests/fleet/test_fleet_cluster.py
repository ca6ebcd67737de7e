"""Fleet on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from conftest import DaskCluster, Dumps, by_target, run_alone

import pymemflow

pytestmark = pytest.mark.slow


def _expected(alone: dict[str, list[str]], command: list[str]) -> dict[str, tuple[list[dict], str | None]]:
    return {word: run_alone(chain, command) for word, chain in alone.items()}


def test_results_equal_each_target_alone(dask_cluster: DaskCluster, windows_dumps: Dumps,
                                         linux_dumps: dict[str, list[str]]) -> None:
    """20+ dumps (synthetic Windows in six formats, a QEMU dump of a Linux guest and dumps written
    from it), one corrupt, one missing: every target's rows equal the CLI run on it alone."""
    alone = {**windows_dumps.alone, **linux_dumps}
    assert len(alone) >= 22
    expected = _expected(alone, ["ps"])
    run = pymemflow.fleet(list(alone), "ps", os="win32", scheduler=dask_cluster.address)
    records = list(run)
    got = by_target(records)
    assert set(got) == set(alone)
    for word, (rows, err) in expected.items():
        assert got[word] == (rows, err), word
    # every record starts with `target`; both workers took part; failures are exactly the bad two
    assert all(next(iter(r)) == "target" for r in records)
    assert len({r.worker for r in run.results}) == 2
    assert {r.target for r in run.failed} == {windows_dumps.corrupt, windows_dumps.missing}
    assert windows_dumps.missing in (got[windows_dumps.missing][1] or "")
    linux_rows = [got[w][0] for w in linux_dumps]
    assert all(rows for rows in linux_rows) and any(r["name"] == "init" or r["pid"] == 1 for r in linux_rows[0])


def test_modules_with_arguments_equal_alone(dask_cluster: DaskCluster, windows_dumps: Dumps) -> None:
    """A command with its own arguments (modules -p explorer.exe) over the Windows dumps."""
    alone = {w: windows_dumps.alone[w] for w in windows_dumps.windows[:6]}
    expected = _expected(alone, ["modules", "-p", "explorer.exe"])
    got = by_target(list(pymemflow.fleet(list(alone), ["modules", "-p", "explorer.exe"], os="win32",
                                         scheduler=dask_cluster.address)))
    assert got == expected
    assert all(rows and not err for rows, err in got.values())


def test_dask_bag(dask_cluster: DaskCluster, windows_dumps: Dumps) -> None:
    """output="bag": the same records as a dask.bag, computed on the cluster."""
    from distributed import Client

    words = windows_dumps.windows[:4] + [windows_dumps.missing]
    with Client(dask_cluster.address) as client:
        bag = pymemflow.fleet(words, "kmods", os="win32", output="bag")
        rows = bag.compute(scheduler=client.get)
    expected = _expected({w: windows_dumps.alone[w] for w in words}, ["kmods"])
    got = by_target([{k: v for k, v in r.items() if not (k == "error" and v is None)} for r in rows])
    assert got == expected


def test_worker_killed_mid_run_loses_nothing(tmp_path, windows_dumps: Dumps,
                                            linux_dumps: dict[str, list[str]]) -> None:
    """SIGKILL one of two workers while it runs a target: the scheduler reruns that target on the
    other worker and every target's rows still arrive, exactly once, equal to the CLI alone.

    Two targets read through the `delay` middleware (5 ms a batched read: seconds of wall time, no
    CPU) go first, so the victim is surely in the middle of one when it is killed."""
    slow = {}
    for word in windows_dumps.windows[:2]:
        chain = list(windows_dumps.alone[word])
        chain[1] += ":delay=5ms"
        slow[" ".join(chain)] = chain
    alone = {**slow, **linux_dumps, **windows_dumps.alone}
    expected = _expected(alone, ["ps"])
    cluster = DaskCluster(tmp_path)
    try:
        from distributed import Client

        with Client(cluster.address) as watcher:
            pids = watcher.run(os.getpid)
            killed: dict[str, object] = {}
            stop = threading.Event()

            def kill_one_running_a_slow_target() -> None:
                while not stop.wait(0.05):
                    for addr, keys in watcher.processing().items():
                        slow_keys = [k for k in keys if int(str(k).rsplit("-", 2)[1]) < len(slow)]
                        if slow_keys:
                            os.kill(pids[addr], signal.SIGKILL)
                            killed.update(addr=addr, index=int(str(slow_keys[0]).rsplit("-", 2)[1]))
                            return

            hunter = threading.Thread(target=kill_one_running_a_slow_target)
            hunter.start()
            try:
                run = pymemflow.fleet(list(alone), "ps", os="win32", scheduler=cluster.address)
                records = list(run)
            finally:
                stop.set()
                hunter.join()
            assert killed, "no worker was seen running a slow target"
            results = {r.index: r for r in run.results}
            assert results[killed["index"]].worker != killed["addr"]  # type: ignore[index]
            assert results[killed["index"]].ok  # type: ignore[index]
            assert len(watcher.scheduler_info()["workers"]) == 1
    finally:
        cluster.close()
    got = by_target(records)
    assert got == expected
    assert len(run.results) == len(alone)


def test_timeout_and_retries_are_per_target(dask_cluster: DaskCluster, windows_dumps: Dumps) -> None:
    """--retries reruns failed targets (attempts counted) and never the good ones."""
    words = windows_dumps.windows[:3] + [windows_dumps.missing]
    run = pymemflow.fleet(words, "ps", os="win32", scheduler=dask_cluster.address, retries=2, timeout=120)
    got = by_target(list(run))
    attempts = {r.target: r.attempts for r in run.results}
    assert attempts[windows_dumps.missing] == 3
    assert all(attempts[w] == 1 and got[w][0] for w in windows_dumps.windows[:3])


def test_stopping_early_cancels_the_rest(dask_cluster: DaskCluster, windows_dumps: Dumps) -> None:
    """Closing the iterator after the first record leaves no work behind on the cluster."""
    from distributed import Client

    run = pymemflow.fleet(windows_dumps.windows, "ps", os="win32", scheduler=dask_cluster.address)
    first = next(run)
    run.close()
    assert first["target"] in windows_dumps.windows
    with Client(dask_cluster.address) as c:
        done = threading.Event()
        for _ in range(100):
            if not any(c.processing().values()) and not c.run_on_scheduler(
                    lambda dask_scheduler: len(dask_scheduler.queued)):
                done.set()
                break
            threading.Event().wait(0.1)
        assert done.is_set()


def test_daemon_connections_are_targets(dask_cluster: DaskCluster, tmp_path) -> None:
    """`remote:` targets: a real `pymemflow serve` on a unix socket, reached through its connector
    (win32 runs on the worker) and through its OS layer (win32 runs in the daemon)."""
    import subprocess
    import sys
    import time

    sock = tmp_path / "q19-serve.sock"
    daemon = subprocess.Popen([sys.executable, "-m", "pymemflow", "serve", "--socket", str(sock),
                               "--open", "w1=-c demo:win10,seed=1,size=64m -o win32",
                               "--open", "w2=-c demo:win7,seed=2,size=64m -o win32"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            if sock.exists():
                break
            assert daemon.poll() is None, daemon.stderr.read().decode() if daemon.stderr else ""
            time.sleep(0.1)
        base = f"unix:{sock}"
        alone = {f"remote:{base},conn=w1": ["-c", f"remote:{base},conn=w1", "-o", "win32"],
                 f"-o remote:{base},conn=w2": ["-o", f"remote:{base},conn=w2"],
                 f"remote:{base},conn=nope": ["-c", f"remote:{base},conn=nope", "-o", "win32"]}
        expected = _expected(alone, ["ps"])
        got = by_target(list(pymemflow.fleet(list(alone), "ps", os="win32", scheduler=dask_cluster.address)))
        assert got == expected
        assert len(got[f"remote:{base},conn=w1"][0]) > 10 and "nope" in (got[f"remote:{base},conn=nope"][1] or "")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def test_dask_dataframe(dask_cluster: DaskCluster, windows_dumps: Dumps) -> None:
    """output="dataframe": one row per record, `target` first, `error` last, 64-bit addresses intact."""
    pytest.importorskip("pandas")
    from distributed import Client

    words = [windows_dumps.missing] + windows_dumps.windows[:3]  # a failure first: columns still right
    expected = _expected({w: windows_dumps.alone[w] for w in words}, ["ps"])
    with Client(dask_cluster.address) as client:
        df = pymemflow.fleet(words, "ps", os="win32", output="dataframe").compute(scheduler=client.get)
    assert list(df.columns)[0] == "target" and list(df.columns)[-1] == "error"
    for w in windows_dumps.windows[:3]:
        mine = df[df["target"] == w]
        rows = expected[w][0]
        assert list(mine["pid"]) == [r["pid"] for r in rows]
        assert list(mine["address"]) == [r["address"] for r in rows]  # > 2**63: object dtype keeps them
    assert list(df[df["target"] == windows_dumps.missing]["error"]) == [expected[windows_dumps.missing][1]]
