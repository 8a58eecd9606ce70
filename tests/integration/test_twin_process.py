"""Twins in a process of their own: replies are not starved by simulation work, SIGTERM ends
the process within a second whatever it does, and the process ends with its parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from couponlab.cli import sample_lab_path
from couponlab.labfile import LabFile, load_lab
from couponlab.twins import TwinControlError, TwinProcess


def _lab(*names: str, speedup: float = 1000.0) -> LabFile:
    lab = load_lab(sample_lab_path())
    return lab.model_copy(
        update={
            "devices": [d for d in lab.devices if d.name in names],
            "world": {**lab.world, "speedup": speedup},
        }
    )


def _host_port(address: str) -> tuple[str, int]:
    if address.startswith("socket://"):
        host, port = address.removeprefix("socket://").rsplit(":", 1)
        return host, int(port)
    _, host, port, _ = address.split("::")
    return host, int(port)


def _ask(address: str, line: str, timeout_s: float = 2.0) -> str:
    with socket.create_connection(_host_port(address), timeout=timeout_s) as sock:
        sock.sendall(line.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode().strip()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_feeding_feeder_at_a_huge_speedup_slows_time_but_not_the_replies() -> None:
    with TwinProcess(_lab("feeder1", "stage1", speedup=1e6)) as twins:
        feeder, stage = (twins.lab.device(n).address for n in ("feeder1", "stage1"))
        assert _ask(feeder, "GAS 1,4;RATE 1,5;SYST:ERR?").startswith("0,")
        # keep asking until the simulation has shed backlog (a backlog up to max_lag_s of
        # wall time, 0.25 s, is carried first); every reply within the drivers' 2 s timeout
        deadline = time.monotonic() + 30.0
        while True:
            assert "XY-200" in _ask(stage, "*IDN?")
            assert float(_ask(feeder, "RATE? 1")) == 5.0
            status = twins.control.status()
            if status["slowed_s"] > 0 or time.monotonic() > deadline:
                break
        assert status["slowed_s"] > 0  # it could not keep up with 1e6 ...
        assert 0 < status["achieved_speedup"] < 1e6  # ... and says how fast it went
        work = twins.control.work_stats()
        assert work["count"] > 0 and work["max_ms"] < 1000


def test_sigterm_ends_a_busy_twin_process_within_a_second() -> None:
    twins = TwinProcess(_lab("feeder1", speedup=1e6))
    try:
        feeder = twins.lab.device("feeder1").address
        assert _ask(feeder, "GAS 1,4;RATE 1,5;SYST:ERR?").startswith("0,")
        proc = twins._proc
        assert proc is not None
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        # a second by design (hard exit after 0.9 s); slack for a loaded machine
        assert time.monotonic() - sent < 3.0
    finally:
        twins.stop()


def test_the_twin_process_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    lab_path = tmp_path / "lab.yaml"
    _lab("stage1").dump(lab_path)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from couponlab.labfile import load_lab
                from couponlab.twins import TwinProcess
                twins = TwinProcess(load_lab({str(lab_path)!r}))
                print(twins.pid, flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        twin_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 20
        while not _gone(twin_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _gone(twin_pid):
            os.kill(twin_pid, signal.SIGKILL)
            pytest.fail("the twin process outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_a_twin_process_that_cannot_start_says_why() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        lab = _lab("stage1")
        lab = lab.with_addresses({"stage1": f"TCPIP::127.0.0.1::{port}::SOCKET"})
        with pytest.raises(TwinControlError, match="exited with code") as info:
            TwinProcess(lab)
        assert "address already in use" in str(info.value).lower()
