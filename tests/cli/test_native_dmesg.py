"""``-o native dmesg``: this host's kernel log, checked against a record we write and util-linux dmesg."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from pymemflow.cli.main import main
from pymemflow.os.native import kmsg


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def marker() -> str:
    """A warning-level record written into the running kernel's log (root writes to /dev/kmsg)."""
    text = f"pymemflow-test-dmesg-{uuid.uuid4().hex}"
    try:
        with open(kmsg.KMSG, "w") as f:
            f.write(f"<4>{text}\n")
    except OSError as e:
        pytest.skip(f"cannot write a test record to {kmsg.KMSG}: {e}")
    return text


def test_native_dmesg_finds_the_record_we_wrote(capsys: pytest.CaptureFixture[str], marker: str) -> None:
    code, out, err = run(capsys, "-o", "native", "dmesg", "--json")
    assert code == 0, err
    recs = json.loads(out)
    mine = [r for r in recs if r["text"] == marker]
    assert len(mine) == 1
    assert (mine[0]["level"], mine[0]["facility"]) == (4, 1)  # <4> from user space: warning, LOG_USER
    seqs = [r["seq"] for r in recs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    code, out, _ = run(capsys, "-o", "native", "dmesg", "-n", "50")
    assert code == 0 and any(line.endswith(f"] {marker}") for line in out.splitlines())


def test_kmsg_and_klogctl_agree(marker: str) -> None:
    """The two kernel interfaces give the same records (klogctl's timestamps have printk's 6 digits)."""
    try:
        via_syscall = kmsg.read_klogctl()
    except OSError as e:
        pytest.skip(f"klogctl refused: {e}")
    via_kmsg = kmsg.read_kmsg()
    tail = {(r.text, r.level, r.facility, round(r.timestamp, 6)) for r in via_kmsg[-20:]}
    assert (marker, 4, 1) in {t[:3] for t in tail}
    syscall = {(r.text, r.level, r.facility, round(r.timestamp, 6)) for r in via_syscall}
    assert tail <= syscall


FACILITIES = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp"]
LEVELS = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]
DECODED = re.compile(r"^(\w+)\s*:(\w+)\s*: \[\s*(\d+\.\d+)\] (.*)$")


def test_util_linux_dmesg_sees_the_same_records(marker: str) -> None:
    """`dmesg --decode` names facility and level (its --raw prefix ORs the facility unshifted: <5> for user.warn)."""
    exe = shutil.which("dmesg")
    if exe is None:
        pytest.skip("util-linux dmesg is not installed")
    res = subprocess.run([exe, "--decode", "--nopager", "--color=never"], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        pytest.skip(f"dmesg --decode failed: {res.stderr.strip()}")
    theirs = []
    for line in res.stdout.splitlines():
        m = DECODED.match(line)
        if m and m.group(1) in FACILITIES and m.group(2) in LEVELS:
            theirs.append((m.group(4), LEVELS.index(m.group(2)), FACILITIES.index(m.group(1)), float(m.group(3))))
    ours = [(r.text, r.level, r.facility, round(r.timestamp, 6)) for r in kmsg.read_kmsg()]
    assert any(t[:3] == (marker, 4, 1) for t in theirs) and any(t[:3] == (marker, 4, 1) for t in ours)
    n = min(len(theirs), len(ours), 50)
    common = set(theirs[-n:]) & set(ours)
    assert len(common) >= n - 2  # records may arrive between the two reads


def test_kmsg_record_format() -> None:
    """Documentation/ABI/testing/dev-kmsg: escapes, continuation lines, facility and level from prio."""
    rec = kmsg.parse_kmsg_record(b"30,1234,5678901,-;line\\x0aone \\x5c\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A03:00\n")
    assert rec is not None
    assert (rec.seq, rec.timestamp, rec.level, rec.facility, rec.text) == (1234, 5.678901, 6, 3, "line\none \\")
    assert kmsg.parse_kmsg_record(b"garbage without a separator") is None
    assert kmsg.parse_kmsg_record(b"x,y,z;text") is None


def test_dmesg_on_a_layer_without_a_kernel_log_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "-c", "demo", "-o", "win32", "dmesg") == (
        1, "", "pymemflow: error: dmesg: not supported by this chain's OS layer or connector (the win32 OS layer "
        "has no kernel log; dmesg reads Linux: -o linux or -o native)\n")


def test_unreadable_log_is_a_clear_error(tmp_path: pytest.TempPathFactory) -> None:
    """No /dev/kmsg at the given path and klogctl refused: one error naming both (only when klogctl is refused
    here, e.g. without CAP_SYSLOG; as root the fallback succeeds and returns the log)."""
    missing = os.path.join(str(tmp_path), "kmsg")
    try:
        recs = kmsg.kernel_log(missing)
    except Exception as e:
        assert str(e).startswith(f"native: cannot read the kernel log: {missing}: No such file or directory; klogctl:")
    else:
        assert recs and recs == kmsg.parse_syslog_text("\n".join(
            f"<{r.facility << 3 | r.level}>[{r.timestamp:12.6f}] {r.text}" for r in recs))
