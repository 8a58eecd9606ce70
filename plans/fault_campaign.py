"""A fault campaign: runs on the twins with a schedule of faults, and what became of each.

For each :class:`ScheduledFault` the runner runs one plan in the session's RunEngine and
injects the fault through the twins' control channel once the run has emitted
``after_events`` events (the simulation's own control, which plans and drivers never use; the
runner is the operator and the test bench here). A *recoverable* fault is expected to
suspend the run (decision 0071); when the run records the suspension, the operator clears
the fault and resets the device's latched alarms (``clear_alarms``, a feeder's gas alarm),
and the run must then complete. A *non-recoverable* one must end the run with
every device safe: that is checked from the twins' ground truth (``truth("active")``), not
from the devices. For every run, the documents the RunEngine emitted are compared with the
run's JSON-lines log: none may be missing.

:func:`faults_table` prints the outcome: faults injected by kind, runs completed, safe
states reached, documents lost.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import yaml
from bluesky.utils import MsgGenerator

from couponlab.errors import InputError, describe_error
from couponlab.failure import lab_state, root_cause
from couponlab.labfile import LabFile


@dataclass(frozen=True)
class ScheduledFault:
    """One fault of a campaign.

    Attributes
    ----------
    device, kind, params
        What to inject (``couponlab twin fault DEVICE KIND -p KEY=VALUE``).
    recoverable
        True: the run must be suspended and complete once the fault is cleared. False: the
        run must end with every device safe.
    after_events
        Inject once the run has emitted this many events (>= 1).
    """

    device: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    recoverable: bool = False
    after_events: int = 1

    def __post_init__(self) -> None:
        if self.after_events < 1:
            raise InputError("faults", f"after_events = {self.after_events} must be >= 1")


@dataclass
class FaultOutcome:
    """What one scheduled fault did."""

    fault: ScheduledFault
    injected: bool = False
    completed: bool = False
    """The run ended with exit status success."""
    suspended: bool = False
    """The run recorded a suspension."""
    error: str = ""
    """The first line of the error that ended the run ("" if it completed)."""
    lab: str = ""
    """Where the session left each device (read back from the devices)."""
    active: dict[str, bool] = field(default_factory=dict)
    """Ground truth after the run: device -> out of its safe state."""
    emitted: int = 0
    lost: int = 0
    """Documents emitted but missing from the run's JSON-lines log."""

    @property
    def safe(self) -> bool:
        """Return whether the twins' ground truth says no device is out of its safe state."""
        return not any(self.active.values())

    @property
    def as_expected(self) -> bool:
        """Recoverable: suspended and completed. Non-recoverable: ended, every device safe.
        Either way, no document lost."""
        if self.lost or not self.injected:
            return False
        if self.fault.recoverable:
            return self.suspended and self.completed
        return not self.completed and self.safe


LINK_DOWN = {"for_s": 1e9}
"""A link that stays down until the operator clears it (once the run has suspended)."""
DEFAULT_SCHEDULE = (
    ScheduledFault("stage1", "drop", LINK_DOWN, recoverable=True),
    ScheduledFault("feeder1", "drop", LINK_DOWN, recoverable=True, after_events=2),
    ScheduledFault("furnace1", "drop", LINK_DOWN, recoverable=True),
    ScheduledFault("feeder1", "gas_loss", recoverable=True),
    ScheduledFault("stage1", "power_loss"),
    ScheduledFault("feeder1", "power_loss", after_events=2),
    ScheduledFault("furnace1", "power_loss"),
)
"""``couponlab faults run``'s schedule on the bundled lab: each of the stage's, the feeder's
and the furnace's links lost then back and the feeder's shielding gas lost then back
(recoverable), and each one's power loss (not)."""
WATCHED_FAMILIES = ("xy_stage", "powder_feeder", "gradient_furnace")
"""Families whose devices :func:`feeding_while_reading` reads at every step."""


def load_schedule(path: str | Path) -> list[ScheduledFault]:
    """Read a schedule file: a YAML list of ``{device, kind, params, recoverable,
    after_events}`` (``params`` may hold ``for_s``/``wall_s``).

    Raises
    ------
    InputError
        The file is missing, not such a list, or an entry has unknown or missing keys.
    """
    try:
        entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError("faults", f"cannot read schedule {path}: {exc}") from exc
    if not isinstance(entries, list) or not entries:
        raise InputError("faults", f"schedule {path} must be a non-empty YAML list")
    schedule = []
    for i, entry in enumerate(entries, start=1):
        try:
            schedule.append(ScheduledFault(**entry))
        except TypeError as exc:
            raise InputError("faults", f"schedule {path}, entry {i}: {exc}") from exc
    return schedule


def feeding_while_reading(
    lab: LabFile, devices: dict[str, Any], steps: int = 4
) -> Callable[[], MsgGenerator[None]]:
    """Return a plan factory: the lab's first feeder feeds from hopper 1 (2 L/min gas,
    5 g/min) while every stage, feeder and furnace is read ``steps`` times, a checkpoint
    before each; the feeder stops at the end."""
    watched = [devices[e.name] for e in lab.devices if e.family in WATCHED_FAMILIES]
    feeders = [devices[e.name] for e in lab.by_family("powder_feeder")]

    def plan() -> MsgGenerator[None]:
        yield from bps.open_run(md={"plan_name": "feeding_while_reading"})
        if feeders:
            yield from bps.mv(feeders[0].hoppers[1].gas_flow, 2.0)
            yield from bps.mv(feeders[0].hoppers[1], 5.0)
        for _ in range(steps):
            yield from bps.checkpoint()
            yield from bps.trigger_and_read(watched)
        if feeders:
            yield from bps.mv(feeders[0].hoppers[1], 0.0)
        yield from bps.close_run()

    return plan


def run_fault_campaign(
    session: Any,
    schedule: Sequence[ScheduledFault],
    plan: Callable[[], MsgGenerator[Any]],
    *,
    say: Callable[[str], None] = print,
) -> list[FaultOutcome]:
    """Run ``plan()`` once per fault of ``schedule`` on ``session`` (a
    :class:`~couponlab.session.Session` with twins), injecting the fault; return outcomes.

    Raises
    ------
    InputError
        The session has no twins (faults are injected into twins only).
    """
    if session.twins is None:
        raise InputError("faults", "a fault campaign needs a lab with twins")
    control = session.twins.control
    outcomes = []
    for fault in schedule:
        outcome = FaultOutcome(fault)
        operator = _Operator(control, outcome, session.devices.get(fault.device))
        token = session.RE.subscribe(operator)
        try:
            result = session.run(plan())
            outcome.completed = result.exit_status == "success"
        except Exception as exc:
            outcome.error = describe_error(root_cause(exc))
            outcome.lab = lab_state(exc) or ""
        finally:
            session.RE.unsubscribe(token)
            control.clear_faults()
            for reset in operator.resets:
                if reset.done() and not reset.cancelled() and reset.exception() is not None:
                    say(f"  resetting {fault.device}'s alarms failed: {reset.exception()}")
        outcome.active = control.truth("active")
        outcome.emitted = len(operator.emitted)
        outcome.lost = _lost(session.log.folder, operator.emitted)
        say(
            f"  {fault.device} {fault.kind}: "
            + ("completed" if outcome.completed else f"ended: {outcome.error}")
            + (", suspended first" if outcome.suspended else "")
            + f"; {'safe' if outcome.safe else 'NOT SAFE'}; {outcome.lost} document(s) lost"
        )
        outcomes.append(outcome)
    return outcomes


class _Operator:
    """A RunEngine subscriber: notes every document, injects the fault after the chosen
    event, clears a recoverable one once the run records its suspension."""

    def __init__(self, control: Any, outcome: FaultOutcome, device: Any = None) -> None:
        self.control = control
        self.outcome = outcome
        self.device = device
        self.resets: list[asyncio.Task[None]] = []
        self.emitted: list[tuple[str, str]] = []
        """(name, uid) of every document the RunEngine emitted during the run."""

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        self.emitted.append((name, str(doc.get("uid", ""))))
        if name != "event":
            return
        o, f = self.outcome, self.outcome.fault
        if "interruption" in doc["data"]:
            o.suspended = True
            if f.recoverable:
                self.control.clear_faults(f.device)
                reset = getattr(self.device, "clear_alarms", None)
                if callable(reset):  # the operator resets the alarm the fault latched
                    self.resets.append(asyncio.get_running_loop().create_task(reset()))
        elif not o.injected and doc["seq_num"] >= f.after_events:
            self.control.fault(f.device, f.kind, **f.params)
            o.injected = True


def _lost(folder: Path, emitted: list[tuple[str, str]]) -> int:
    """Count the emitted documents (name, uid) that no run log in ``folder`` holds."""
    logged: set[tuple[str, str]] = set()
    starts = {uid for name, uid in emitted if name == "start"}
    for uid in starts:
        path = folder / f"{uid}.jsonl"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                logged.add((record["name"], str(record["doc"].get("uid", ""))))
    return sum(1 for item in emitted if item not in logged)


def faults_table(outcomes: Sequence[FaultOutcome]) -> list[str]:
    """Return the campaign's table: faults injected by kind, runs completed, safe states
    reached after the non-recoverable faults, documents lost, and each fault's outcome."""
    kinds = Counter(o.fault.kind for o in outcomes if o.injected)
    fatal = [o for o in outcomes if not o.fault.recoverable]
    lines = [
        "faults injected by kind: "
        + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"),
        f"runs completed:          {sum(o.completed for o in outcomes)} of {len(outcomes)} "
        f"({sum(o.completed for o in outcomes if o.fault.recoverable)} of "
        f"{sum(o.fault.recoverable for o in outcomes)} after a recoverable fault)",
        f"safe states reached:     {sum(o.safe for o in fatal)} of {len(fatal)} "
        "non-recoverable faults (twins' ground truth)",
        f"documents lost:          {sum(o.lost for o in outcomes)} of "
        f"{sum(o.emitted for o in outcomes)} emitted",
        "",
        f"{'device':<10} {'kind':<11} {'expected':<11} {'outcome':<30} as expected",
    ]
    for o in outcomes:
        expected = "resume" if o.fault.recoverable else "abort+safe"
        got = "completed" if o.completed else "aborted"
        got += " (suspended)" if o.suspended else ""
        got += "" if o.safe else " NOT SAFE"
        lines.append(
            f"{o.fault.device:<10} {o.fault.kind:<11} {expected:<11} {got:<30} "
            f"{'yes' if o.as_expected else 'NO'}"
        )
    return lines


__all__ = [
    "DEFAULT_SCHEDULE",
    "FaultOutcome",
    "ScheduledFault",
    "faults_table",
    "feeding_while_reading",
    "load_schedule",
    "run_fault_campaign",
]
