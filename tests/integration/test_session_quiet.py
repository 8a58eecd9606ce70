"""A normal session on the bundled twins logs no warning from a library: the OPC UA client
asks for a session timeout the server grants, and the furnace twin serves Basic256Sha256
SignAndEncrypt with user names (decision 0069), its certificate and the client's naming
their application URI and host, so asyncua has nothing to warn about."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from couponlab.cli import sample_lab_path
from couponlab.labfile import load_lab
from couponlab.plans.gradient_hold import gradient_oxidation_hold
from couponlab.session import Session


def _library_warnings(lines: list[str]) -> list[str]:
    """Lines of a couponlab log file (``time LEVEL logger: message``) at WARNING or above
    whose logger is not couponlab's."""
    levels = ("WARNING", "ERROR", "CRITICAL")
    return [
        line
        for line in lines
        if len(parts := line.split(" ", 4)) == 5
        and parts[2] in levels
        and not parts[3].startswith("couponlab")
    ]


@pytest.mark.timeout(240)
def test_a_session_on_the_twins_logs_no_library_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.WARNING, logger="asyncua")  # whatever another test set
    lab = load_lab(sample_lab_path())
    lab = lab.model_copy(update={"world": {**lab.world, "speedup": 5000}})
    with Session(lab, out_dir=tmp_path / "out") as s:  # every device of the lab connects
        result = s.run(
            gradient_oxidation_hold(
                s.devices["furnace1"],
                "900 degC",
                "850 degC",
                "1 h",
                "30 min",
                ramp_rate="50 K/min",
            )
        )
        assert result.exit_status == "success"
    library = [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.WARNING and not r.name.startswith("couponlab")
    ]
    assert library == []
    (twin_log,) = (tmp_path / "out" / "twins").glob("*/couponlab.log")  # the twins' records
    assert _library_warnings(twin_log.read_text().splitlines()) == []
