"""HIL checks of the test-frame family: every test frame of the lab file passes the
conformance suite. Checks that pull a specimen run only against twins, or on hardware when
the lab entry's settings say ``hil_destructive: true`` (a specimen ready for each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from couponlab.drivers.frame.test_frame import FrameSettings
from couponlab.lab import make_device
from couponlab.labfile import LabFile
from couponlab.testing.frame import FRAME_CHECKS, FrameConformance


@pytest.mark.parametrize("check", sorted(FRAME_CHECKS))
async def test_test_frames_conform(lab: LabFile, check: str, tmp_path: Path) -> None:
    entries = lab.by_family("test_frame")
    if not entries:
        pytest.skip(f"lab {lab.name!r} has no test_frame device")
    for entry in entries:
        destructive = entry.twin or FrameSettings.of(entry).hil_destructive
        ctx_frame: Any = make_device(entry, out_dir=tmp_path)  # curve files: tmp_path
        await ctx_frame.connect(timeout=10.0)
        try:
            ctx = FrameConformance(ctx_frame, destructive=destructive)
            if check in {"test_to_fracture", "stop_holds", "overforce_stops",
                         "safe_state_unloads"} and not destructive:  # fmt: skip
                pytest.skip(f"{entry.name}: {check} pulls a specimen (hil_destructive: false)")
            await FRAME_CHECKS[check](ctx)
        finally:
            await ctx_frame.safe_state()
            await ctx_frame.disconnect()
