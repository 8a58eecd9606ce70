"""``couponlab ipython``: the namespace (devices by name, plans, a RunEngine with progress
bars and live feedback), metadata that survive a restart, and one real IPython process on
the bundled twins that runs a short plan, completes a device's signal name and leaves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bluesky.plans as bp
import matplotlib
import pytest

from couponlab.labfile import LabFile
from couponlab.plans.ipython_profile import build_namespace, close_namespace
from couponlab.plans.live import LiveFeedback
from couponlab.progress import ProgressBars
from couponlab.session import Session
from couponlab.testing.fake_device import fake_lab_entry

matplotlib.use("Agg")


def _fake_lab() -> LabFile:
    return LabFile.model_validate(
        {"name": "fake", "devices": [fake_lab_entry("dev0", "ok"), fake_lab_entry("dev1", "ok")]}
    )


def test_the_namespace_holds_devices_plans_and_a_run_engine_with_live_feedback(
    tmp_path: Path,
) -> None:
    with Session(_fake_lab(), out_dir=tmp_path, store=False) as s:
        ns = build_namespace(out_dir=tmp_path, session=s)
        assert ns["dev0"] is s.devices["dev0"] and ns["dev1"] is s.devices["dev1"]
        assert ns["RE"] is s.RE
        assert isinstance(s.RE.waiting_hook, ProgressBars)
        assert isinstance(ns["live"], LiveFeedback)
        for plan in ("gradient_oxidation_hold", "raster_map", "tensile_test", "bp", "bps"):
            assert plan in ns
        lines: list[str] = []
        ns["live"].out = lines.append  # (the table is made per run: it prints here)
        ns["RE"](bp.count([ns["dev0"]], 2))
        assert any("dev0" in line for line in lines)  # the live table of the run
        close_namespace(ns, session=False)


def test_run_metadata_survive_a_restart_with_the_new_sessions_lab(tmp_path: Path) -> None:
    with Session(_fake_lab(), out_dir=tmp_path, store=False) as s:
        ns = build_namespace(out_dir=tmp_path, session=s, live=False)
        ns["RE"].md["operator"] = "ada"
        ns["RE"](bp.count([ns["dev0"]], 1))
        ns["RE"](bp.count([ns["dev0"]], 1))
        close_namespace(ns, session=False)
    lab = _fake_lab().model_copy(update={"name": "fake-2"})
    starts: list[dict[str, object]] = []
    with Session(lab, out_dir=tmp_path, store=False) as s:
        ns = build_namespace(out_dir=tmp_path, session=s, live=False)
        ns["RE"].subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
        ns["RE"](bp.count([ns["dev0"]], 1))
        close_namespace(ns, session=False)
    (start,) = starts
    assert start["operator"] == "ada"  # the user's key, from the first session
    assert start["scan_id"] == 3  # scan ids go on
    assert start["lab"] == "fake-2"  # the session's own lab, not the stored one
    assert (tmp_path / "metadata").is_dir()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_couponlab_ipython_runs_a_plan_on_the_twins_and_completes_names(tmp_path: Path) -> None:
    code = "\n".join(
        [
            "from IPython.core.completer import provisionalcompleter",
            "r = RE(bp.count([furnace1.clock], 2))",
            "print('EXIT', r.exit_status, RE.md['scan_id'])",
            "with provisionalcompleter():",
            "    done = get_ipython().Completer.completions('furnace1.clock.si', 17)",
            "    print('COMPLETE', [c.text for c in done])",
            "ns = get_ipython().user_ns",
            "print('NAMES', sorted(n for n in ('stage1', 'raster_map', 'live') if n in ns))",
        ]
    )
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), "MPLBACKEND": "Agg"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "couponlab.cli",
            "ipython",
            "sim",
            "--out",
            str(tmp_path / "runs"),
            "--",
            "--HistoryManager.enabled=False",
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "EXIT success 1" in out
    assert "COMPLETE ['sim_time']" in out
    assert "NAMES ['live', 'raster_map', 'stage1']" in out
    assert "furnace1-clock-sim_time" in out  # the live table
    assert "Warning" not in done.stderr and "WARNING" not in done.stderr, done.stderr
    assert len(list((tmp_path / "runs").glob("*.jsonl"))) == 1
