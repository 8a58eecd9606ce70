"""Session says what is true: a device's own error from call(), and a typed SafeStateError
naming every device that did not reach its safe state, from safe_state() and close()."""

from __future__ import annotations

from pathlib import Path

import pytest

from couponlab.errors import InstrumentTimeoutError, ProtocolError, SafeStateError
from couponlab.failure import lab_state, one_line
from couponlab.labfile import LabFile
from couponlab.session import Session
from couponlab.testing.fake_device import FakeLabDevice, fake_lab_entry


def _lab(*modes: str) -> LabFile:
    return LabFile.model_validate(
        {
            "name": "fake-lab",
            "devices": [fake_lab_entry(f"dev{i}", m) for i, m in enumerate(modes)],
        }
    )


def _fake(s: Session, name: str) -> FakeLabDevice:
    device = s.devices[name]
    assert isinstance(device, FakeLabDevice)
    return device


def test_call_returns_the_value_and_raises_the_devices_own_error(tmp_path: Path) -> None:
    with Session(_lab("ok"), out_dir=tmp_path) as s:
        dev = _fake(s, "dev0")
        assert s.call(dev.identify) == "couponlab, fake, 0, 0"
        with pytest.raises(ProtocolError, match="dev0: instrument replied -222"):
            s.call(dev.refuse)


def test_call_with_a_timeout_raises_a_typed_timeout(tmp_path: Path) -> None:
    with Session(_lab("hang"), out_dir=tmp_path) as s:
        dev = _fake(s, "dev0")
        with pytest.raises(InstrumentTimeoutError, match=r"did not finish within 0\.05 s"):
            s.call(dev.safe_state, timeout=0.05)
        dev.safe_state_mode = "ok"  # let close() succeed


def test_safe_state_lists_every_device_that_failed_and_why(tmp_path: Path) -> None:
    s = Session(_lab("ok", "error", "hang", "ok"), out_dir=tmp_path)
    try:
        with pytest.raises(SafeStateError) as info:
            s.safe_state(timeout=0.2)
        err = info.value
        assert list(err.failures) == ["dev1", "dev2"]
        assert err.reached == ["dev0", "dev3"]
        assert isinstance(err.failures["dev1"], InstrumentTimeoutError)
        assert "dev1: no reply to STOP within 2 s (InstrumentTimeoutError)" in str(err)
        assert "dev2: safe_state() did not finish within 0.2 s" in str(err)
        assert "2 device(s) NOT in their safe state" in str(err)
        assert _fake(s, "dev0").safe and _fake(s, "dev3").safe  # the others were still made safe
        assert s.lab_state.startswith("NOT SAFE")
    finally:
        _fake(s, "dev2").safe_state_mode = "ok"
        _fake(s, "dev1").safe_state_mode = "ok"
        s.close()
    assert s.lab_state.startswith("safe")


def test_close_raises_when_a_device_failed_and_still_closes_everything(tmp_path: Path) -> None:
    s = Session(_lab("ok", "error"), out_dir=tmp_path)
    devices = [_fake(s, "dev0"), _fake(s, "dev1")]
    with pytest.raises(SafeStateError, match="dev1"):
        s.close()
    assert all(d.calls[-1] == "disconnect" for d in devices)
    assert s.devices == {}
    with pytest.raises(SafeStateError):  # never returns normally afterwards either
        s.close()


def test_an_error_in_the_with_block_stays_the_cause_and_carries_the_lab_state(
    tmp_path: Path,
) -> None:
    with pytest.raises(ProtocolError) as info, Session(_lab("ok", "error"), out_dir=tmp_path) as s:
        s.call(_fake(s, "dev0").refuse)
    state = lab_state(info.value)
    assert state is not None and state.startswith("NOT SAFE") and "dev1" in state
    line = one_line(info.value)
    assert line.startswith("dev0: instrument replied -222,'Data out of range' (ProtocolError)")
    assert line.endswith(state)


def test_a_clean_exit_after_an_error_says_the_lab_is_safe(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as info, Session(_lab("ok"), out_dir=tmp_path) as s:
        s.call(_fake(s, "dev0").refuse)
    assert lab_state(info.value) == "safe (all 1 device(s) in their safe state)"
