"""Malformed lab files: every way in (``load_lab``, ``couponlab twin serve``, ``check``,
``demo`` and ``Session.open``) refuses each one with a short, one-line error that names the
file, the device and the key, and the commands exit with code 2 and no traceback.

Each case is the bundled sim lab (every family, twins that reference each other) with one
thing broken.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from couponlab.cli import main, sample_lab_path
from couponlab.labfile import LabFileError, load_lab
from couponlab.session import Session

BASE: dict[str, Any] = yaml.safe_load(sample_lab_path().read_text())
Lab = dict[str, Any]


def dev(lab: Lab, name: str) -> dict[str, Any]:
    """Return the device called ``name`` of a lab mapping."""
    found: dict[str, Any] = next(d for d in lab["devices"] if d["name"] == name)
    return found


class Case(NamedTuple):
    """A broken lab (a mutation of the base lab, or raw text) and what its error names."""

    breaks: Callable[[Lab], None] | str
    device: str
    key: str


def put(name: str, section: str, **values: Any) -> Case:
    """Set ``values`` in ``section`` of device ``name``; the error names the first key."""

    def apply(lab: Lab) -> None:
        dev(lab, name).setdefault(section, {}).update(values)

    return Case(apply, name, f"{section}.{next(iter(values))}")


def field(name: str, key: str, value: Any) -> Case:
    """Set a device's top-level ``key`` (or drop it: ``...``)."""

    def apply(lab: Lab) -> None:
        if value is ...:
            del dev(lab, name)[key]
        else:
            dev(lab, name)[key] = value

    return Case(apply, name if key != "name" else value, key)


def drop(name: str, section: str, key: str) -> Case:
    """Drop ``key`` from ``section`` of device ``name``."""

    def apply(lab: Lab) -> None:
        del dev(lab, name)[section][key]

    return Case(apply, name, f"{section}.{key}")


def top(key: str, value: Any) -> Case:
    """Set (or drop: ``...``) a top-level key of the lab; the error names ``key``."""

    def apply(lab: Lab) -> None:
        if value is ...:
            del lab[key]
        else:
            lab[key] = value

    return Case(apply, "", key)


def unnamed(lab: Lab) -> None:
    del lab["devices"][0]["name"]


def twice(lab: Lab) -> None:
    dev(lab, "feeder1")["name"] = "furnace1"


def stage_not_a_twin(lab: Lab) -> None:
    dev(lab, "stage1")["twin"] = False


def nested(name: str, *path: str, value: Any) -> Case:
    """Set ``value`` at the dotted ``path`` of device ``name`` (mappings made as needed)."""

    def apply(lab: Lab) -> None:
        node = dev(lab, name)
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return Case(apply, name, ".".join(path))


REPOSITORY_FILE = str(Path(__file__).resolve().parent / "furnace.secret")
"""A password file inside this repository (refused: credentials live outside it)."""


CASES: list[tuple[str, Case]] = [
    # -- the file as a whole -------------------------------------------------------------
    ("not-yaml", Case("name: x\ndevices: [\n  {name: a\n", "", "line")),
    ("a-list", Case("- furnace1\n- feeder1\n", "", "")),
    ("empty", Case("", "", "")),
    ("no-name", top("name", ...)),
    ("no-devices", top("devices", ...)),
    ("devices-mapping", top("devices", {"furnace1": {}})),
    ("unknown-top-key", top("colour", "red")),
    ("world-negative-speedup", top("world", {"speedup": -1})),
    ("world-bad-seed", top("world", {"seed": "abc"})),
    # -- a device's identity ---------------------------------------------------------------
    ("device-without-name", Case(unnamed, "#1", "name")),
    ("bad-device-name", field("furnace1", "name", "Furnace-1")),
    ("duplicate-name", Case(twice, "furnace1", "name")),
    ("unknown-family", field("furnace1", "family", "toaster")),
    ("unknown-driver", field("furnace1", "driver", "couponlab.drivers.furnace:Toaster")),
    ("driver-not-a-path", field("furnace1", "driver", "nope")),
    ("driver-of-other-family", field("furnace1", "driver", "scpi_test_frame")),
    ("no-address", field("furnace1", "address", ...)),
    ("unknown-device-key", field("furnace1", "colour", "red")),
    ("twin-not-bool", field("furnace1", "twin", "maybe")),
    ("settings-not-mapping", field("furnace1", "settings", [1, 2])),
    # -- limits: unit, sign, ordering --------------------------------------------------------
    ("below-absolute-zero", put("furnace1", "limits", max_temperature="-300 degC")),
    ("temperature-in-mm", put("furnace1", "limits", max_temperature="1200 mm")),
    ("temperature-difference", put("furnace1", "limits", max_temperature="100 delta_degC")),
    ("temperature-word", put("furnace1", "limits", max_temperature="hot")),
    ("limit-typo", put("furnace1", "limits", max_temp="900 degC")),
    ("negative-feed-rate", put("feeder1", "limits", max_feed_rate="-3 g/min")),
    ("feed-rate-in-degc", put("feeder1", "limits", max_feed_rate="30 degC")),
    ("gas-volume-not-flow", put("feeder1", "limits", max_gas_flow="10 L")),
    ("laser-power-in-kg", put("cell1", "limits", max_laser_power="1 kg")),
    ("force-in-kg", put("frame1", "limits", max_force="50 kg")),
    ("infinite-force", put("frame1", "limits", max_force=float("inf"))),
    ("range-reversed", put("stage1", "limits", x=["150 mm", "-10 mm"])),
    ("range-wrong-unit", put("stage1", "limits", y=["-10 degC", "60 mm"])),
    ("range-not-a-pair", put("stage1", "limits", x="150 mm")),
    ("zero-velocity", put("stage1", "limits", max_velocity="0 mm/s")),
    # -- settings: unknown keys, one name per setting, values -------------------------------
    ("zones-zero", put("furnace1", "settings", zones=0)),
    ("zones-word", put("furnace1", "settings", zones="eight")),
    ("timeout-old-name", put("furnace1", "settings", timeout=2)),
    ("timeout-negative", put("furnace1", "settings", timeout_s=-1)),
    ("watchdog-negative", put("furnace1", "settings", watchdog_s=-5)),
    ("timeout-in-metres", put("feeder1", "settings", timeout_s="2 m")),
    ("parity-unknown", put("feeder1", "settings", parity="X")),
    ("baudrate-word", put("feeder1", "settings", baudrate="fast")),
    ("hoppers-zero", put("feeder1", "settings", hoppers=0)),
    ("poll-period-old-name", put("frame1", "settings", poll_period=0.05)),
    ("negative-thickness", put("frame1", "settings", specimen_thickness="-2 mm")),
    ("elements-a-string", put("xrf1", "settings", elements="Cr")),
    ("positions-missing", drop("tcs1", "settings", "positions_mm")),
    ("positions-empty", put("tcs1", "settings", positions_mm=[])),
    ("positions-infinite", put("tcs1", "settings", positions_mm=[0, float("inf")])),
    ("data-dir-relative", put("camera1", "settings", data_dir="runs")),
    # -- credentials: referred to, never held (docs/decisions/0069) ----------------------------
    ("password-inline", put("furnace1", "settings", password="hunter2")),
    ("security-password-inline",
     nested("furnace1", "settings", "security", "password", value="x")),
    ("twin-account-password-inline",
     nested("furnace1", "twin_config", "users", "viewer", "password", value="x")),
    ("security-policy-unknown",
     nested("furnace1", "settings", "security", "policy", value="Basic128")),
    ("security-unknown-key", nested("furnace1", "settings", "security", "certificate", value="c")),
    ("password-file-in-repository",
     nested("furnace1", "settings", "security", "password_file", value=REPOSITORY_FILE)),
    ("security-user-without-account",
     nested("furnace1", "settings", "security", "user", value="root")),
    ("twin-accounts-without-security", Case(
        drop("furnace1", "settings", "security").breaks, "furnace1", "twin_config.users")),
    ("password-env-and-file", Case(
        nested("furnace1", "settings", "security", "password_env", value="F1_PASSWORD").breaks,
        "furnace1", "settings.security")),
    # -- twins: their config, their address, the devices they reference -------------------
    ("twin-config-typo", put("furnace1", "twin_config", colour="red")),
    ("twin-config-value", put("furnace1", "twin_config", zones=0)),
    ("twin-on-other-host", field("furnace1", "address", "opc.tcp://10.0.0.5:4840")),
    ("twin-wrong-notation", field("frame1", "address", "socket://127.0.0.1:0")),
    ("missing-feeder", put("cell1", "twin_config", feeders=["feeder9"])),
    ("feeder-is-a-frame", put("cell1", "twin_config", feeders=["frame1"])),
    ("missing-stage", put("profiler1", "twin_config", stage="stage9")),
    ("stage-required", drop("profiler1", "twin_config", "stage")),
    ("stage-is-a-scanner", put("xrf1", "twin_config", stage="tcs1")),
    ("missing-furnace", put("tcs1", "twin_config", furnace="furnace9")),
    ("camera-missing-stage", put("camera1", "twin_config", stage="stage9")),
    ("stage-not-a-twin", Case(stage_not_a_twin, "profiler1", "twin_config.stage")),
]  # fmt: skip
IDS = [c[0] for c in CASES]
TABLE = [c[1] for c in CASES]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len(set(IDS)) == len(IDS)


def test_the_base_lab_is_valid(tmp_path: Path) -> None:
    """Each case breaks exactly one thing: the unbroken lab loads."""
    p = tmp_path / "lab.yaml"
    p.write_text(yaml.safe_dump(BASE))
    assert load_lab(p).names() == [d["name"] for d in BASE["devices"]]


def _write(tmp_path: Path, case: Callable[[Lab], None] | str) -> Path:
    p = tmp_path / "broken-lab.yaml"
    if isinstance(case, str):
        p.write_text(case)
    else:
        lab = copy.deepcopy(BASE)
        case(lab)
        p.write_text(yaml.safe_dump(lab, sort_keys=False))
    return p


def _check_message(text: str, path: Path, device: str, key: str) -> None:
    assert "\n" not in text.strip(), f"not one line: {text!r}"
    assert "Traceback" not in text
    short = len(text.replace(str(path), "FILE"))
    assert short < 300, f"not short ({short} characters besides the path): {text!r}"
    assert str(path) in text, f"the file is not named: {text!r}"
    if device:
        assert f"device {device!r}" in text, f"device {device!r} not named: {text!r}"
    assert f": {key}" in text, f"key {key!r} not named: {text!r}"


@pytest.mark.parametrize(("case", "device", "key"), TABLE, ids=IDS)
def test_load_lab_names_file_device_and_key(
    tmp_path: Path, case: Callable[[Lab], None] | str, device: str, key: str
) -> None:
    p = _write(tmp_path, case)
    with pytest.raises(LabFileError) as info:
        load_lab(p)
    _check_message(str(info.value), p, device, key)
    assert info.value.device == device
    assert info.value.key.startswith(key)


@pytest.mark.parametrize(
    "command",
    [["twin", "serve", "{p}"], ["check", "{p}"], ["demo", "--lab", "{p}", "--out", "{out}"]],
    ids=["twin-serve", "check", "demo"],
)
@pytest.mark.parametrize(("case", "device", "key"), TABLE, ids=IDS)
def test_every_command_exits_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    case: Callable[[Lab], None] | str,
    device: str,
    key: str,
) -> None:
    p = _write(tmp_path, case)
    out = tmp_path / "runs"
    log = tmp_path / "couponlab.log"
    argv = ["--log", str(log), *(a.format(p=p, out=out) for a in command)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "", "nothing may start before the lab file is refused"
    assert captured.err.startswith("couponlab: ")
    _check_message(captured.err, p, device, key)
    assert not out.exists(), "no run may start"


@pytest.mark.parametrize(("case", "device", "key"), TABLE, ids=IDS)
def test_session_open_refuses(
    tmp_path: Path, case: Callable[[Lab], None] | str, device: str, key: str
) -> None:
    p = _write(tmp_path, case)
    with pytest.raises(LabFileError) as info:
        Session.open(p, out_dir=tmp_path / "runs")
    _check_message(str(info.value), p, device, key)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("case_id", ["unknown-driver", "missing-stage", "range-reversed"])
def test_the_installed_command_exits_2_without_traceback(tmp_path: Path, case_id: str) -> None:
    """The real process: exit code 2 and one line on stderr."""
    case, device, key = TABLE[IDS.index(case_id)]
    p = _write(tmp_path, case)
    for argv in (["twin", "serve", str(p)], ["check", str(p)]):
        proc = subprocess.run(
            [sys.executable, "-m", "couponlab.cli", "--log", str(tmp_path / "log"), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        _check_message(proc.stderr, p, device, key)
