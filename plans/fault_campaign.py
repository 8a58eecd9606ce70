"""A fault campaign: the campaign on the twins with a schedule of faults, and what became of it.

The schedule's faults are injected, in order, at points of the campaign through the twins'
control channel (the simulation's own control, which plans and drivers never use; the
runner is the operator and the test bench here): each once a run of the campaign whose
``plan_name`` is the fault's ``plan`` has emitted ``after_events`` events since the previous
fault was dealt with. A *recoverable* fault is expected to suspend the campaign (decision
0071); when a run records the suspension, the operator clears the fault and resets the
device's latched alarms (``clear_alarms``, a feeder's gas alarm), and the campaign must go
on to complete. A *non-recoverable* one must end the campaign with every device safe: that
is checked from the twins' ground truth (``truth("active")``), not from the devices.

A non-recoverable fault ends its campaign, so the schedule is played as several campaign
runs, each on twins of its own (a fresh :class:`~couponlab.session.Session`: a campaign
left half done leaves coupons on the instruments' stations, and its open furnace batch was
aborted by the safe state, which a resumed campaign refuses to expose twice, decision 0062):
one with every recoverable fault, which must complete, then one per non-recoverable fault.
For every campaign run, the documents the RunEngine emitted are compared with the
JSON-lines log, and after the last one with the store: none may be missing.

:func:`faults_table` prints the outcome: faults injected by kind, runs completed, safe
states reached, documents lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from bluesky.utils import MsgGenerator

from couponlab.errors import InputError, describe_error
from couponlab.failure import lab_state, root_cause

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledFault:
    """One fault of a campaign.

    Attributes
    ----------
    device, kind, params
        What to inject (``couponlab twin fault DEVICE KIND -p KEY=VALUE``).
    recoverable
        True: the campaign must be suspended, and complete once the fault is cleared.
        False: the campaign must end with every device safe.
    after_events
        Inject once this many events (>= 1) of the runs named by ``plan`` have been emitted
        since the previous fault was injected and, if recoverable, cleared.
    plan
        Count only the events of runs whose start document's ``plan_name`` is this
        (``raster_map``, ``print_graded_coupon``, ``calibrate_feeder``, ``campaign_exposure``
        ...); "" counts every run's.
    """

    device: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    recoverable: bool = False
    after_events: int = 1
    plan: str = ""

    def __post_init__(self) -> None:
        if self.after_events < 1:
            raise InputError("faults", f"after_events = {self.after_events} must be >= 1")


@dataclass
class FaultOutcome:
    """What one scheduled fault did (and the campaign run it fell in)."""

    fault: ScheduledFault
    injected: bool = False
    suspended: bool = False
    """A run recorded a suspension after the fault was injected."""
    completed: bool = False
    """The campaign run it fell in ended with exit status success."""
    error: str = ""
    """The first line of the error that ended the campaign run ("" if it completed)."""
    lab: str = ""
    """Where the session left each device (read back from the devices)."""
    active: dict[str, bool] = field(default_factory=dict)
    """Ground truth after the campaign run: device -> out of its safe state."""
    lost: int = 0
    """Documents of its campaign run missing from the JSON-lines log (or the store)."""

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


@dataclass
class CampaignRun:
    """One campaign run of a fault campaign: its faults, how it ended, its documents."""

    faults: list[FaultOutcome]
    completed: bool = False
    error: str = ""
    lab: str = ""
    active: dict[str, bool] = field(default_factory=dict)
    emitted: list[tuple[str, str]] = field(default_factory=list)
    """(name, uid) of every document the RunEngine emitted."""
    lost: int = 0
    """Emitted documents missing from the JSON-lines log."""
    unstored: int | None = None
    """Emitted runs' documents (start, stop, streams, events) missing from the store, or in
    it twice (None: the store was not checked, :func:`check_store`)."""
    runs: EmittedRuns = field(default_factory=lambda: EmittedRuns())
    """What the RunEngine emitted, run by run."""


@dataclass
class EmittedRuns:
    """The runs the RunEngine emitted: start uid -> stop uid, descriptors, events."""

    stops: dict[str, str] = field(default_factory=dict)
    """Start uid -> "" (no stop emitted) or the stop document's uid."""
    streams: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Descriptor uid -> (start uid, stream name)."""
    events: dict[str, list[int]] = field(default_factory=dict)
    """Descriptor uid -> the seq_num of each event emitted."""

    def add(self, name: str, doc: dict[str, Any]) -> None:
        """Note one document."""
        if name == "start":
            self.stops[str(doc["uid"])] = ""
        elif name == "stop":
            self.stops[str(doc["run_start"])] = str(doc["uid"])
        elif name == "descriptor":
            self.streams[str(doc["uid"])] = (str(doc["run_start"]), str(doc.get("name", "")))
            self.events[str(doc["uid"])] = []
        elif name == "event":
            self.events.setdefault(str(doc["descriptor"]), []).append(int(doc["seq_num"]))

    def unstored(self, store: Any) -> int:
        """Count the documents of these runs that ``store`` (a Tiled root container,
        :func:`couponlab.store.open_store`) lacks, or holds twice: per run its start (the
        whole run if absent), its stop, each stream, each event (by ``seq_num``, as many
        times as emitted: fewer is lost, more is twice)."""
        bad = 0
        for start, stop in self.stops.items():
            mine = [d for d, (run, _) in self.streams.items() if run == start]
            if start not in store:
                bad += 1 + bool(stop) + sum(1 + len(self.events[d]) for d in mine)
                continue
            run = store[start]
            stored_stop = run.metadata.get("stop") or {}
            bad += bool(stop) and stored_stop.get("uid") != stop
            for descriptor in mine:
                stream, emitted = self.streams[descriptor][1], self.events[descriptor]
                if stream not in run:
                    bad += 1 + len(emitted)
                    continue
                if emitted:
                    table = run[stream].base["internal"].read(["seq_num"])
                    stored = Counter(int(n) for n in table["seq_num"])
                    # as often as emitted (bluesky 1.15.1 numbers a run's interruptions
                    # events from 1 at each suspension: one seq_num may come twice)
                    sent = Counter(emitted)
                    bad += sum(abs(stored[n] - sent[n]) for n in sent.keys() | stored.keys())
        return bad


LINK_DOWN = {"for_s": 1e9}
"""A link that stays down until the operator clears it (once the campaign has suspended)."""
HEATER_STUCK = {"zone": 2, "output": 65.0}
"""Zone 2's heater stuck at 65 % until the operator clears it: at the bundled campaign's
1100 degC gradient the zone settles near 1211 degC, above the over-temperature alarm
(1200 degC, reached after about 1400 s) and below the interlock (1225 degC; decision 0076).
It lasts until cleared rather than for a set time: the campaign runs the twins at up to
20000x while it waits, and a suspender reads the furnace at wall-clock rate."""
DEFAULT_SCHEDULE = (
    ScheduledFault("furnace1", "jam", HEATER_STUCK, True, 3, plan="campaign_exposure"),
    ScheduledFault("feeder1", "drop", LINK_DOWN, True, after_events=10, plan="raster_map"),
    ScheduledFault("furnace1", "drop", LINK_DOWN, True, after_events=10, plan="raster_map"),
    ScheduledFault("feeder1", "gas_loss", {"hopper": 1}, True, after_events=10, plan="raster_map"),
    ScheduledFault("feeder1", "power_loss", after_events=2, plan="calibrate_feeder"),
    ScheduledFault("feeder1", "gas_loss", plan="print_graded_coupon"),
    ScheduledFault("furnace1", "power_loss", after_events=2, plan="campaign_exposure"),
    ScheduledFault("stage1", "power_loss", after_events=10, plan="raster_map"),
    ScheduledFault("stage1", "jam", {"axis": "X"}, after_events=10, plan="raster_map"),
)
"""``couponlab faults run``'s schedule for the bundled campaign on the bundled lab: a furnace
heater stuck at 65 % in the first batch's hold (the over-temperature alarm, then clear),
then during the first map (after that exposure) the feeder's and the furnace's links lost
and the feeder's carrier gas lost while it purges between prints, each then back
(recoverable: one campaign that completes); the feeder's power lost while it is
calibrated, its shielding gas lost as a print starts (the deposition cell refuses to
start the print: the laser never fires), the furnace's power lost during the first batch's
exposure, the stage's power lost and its X axis jammed during the first map (each ends a
campaign of its own)."""


def campaign_runs(schedule: Sequence[ScheduledFault]) -> list[list[ScheduledFault]]:
    """Split a schedule into campaign runs: every recoverable fault in one (in the
    schedule's order: the campaign must complete), then one per non-recoverable fault
    (which ends it)."""
    recoverable = [f for f in schedule if f.recoverable]
    return ([recoverable] if recoverable else []) + [[f] for f in schedule if not f.recoverable]


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


Session = Any
"""A :class:`~couponlab.session.Session` (not imported here: plans do not import it)."""
PlanFor = Callable[[Any, int, "dict[str, float] | None"], MsgGenerator[Any]]
"""``plan_for(session, k, speedups)``: the plan of the k-th campaign run (1, 2 ...) in
``session``, with the twins' speed-up per campaign phase ``speedups`` (None: the campaign's
own, :data:`~couponlab.plans.campaign_run.SPEEDUPS`)."""

RECOVERABLE_SPEEDUP = 1000.0
"""The fastest the twins' time runs (virtual s per wall s, every campaign phase capped) in a
campaign run that holds recoverable faults. A suspender samples its condition at wall-clock
rate (the furnace profile's subscription publishes every 0.1 s of wall time, the feeder's
alarms are polled every 0.5 s), while the condition lasts instrument time: the stuck heater
of :data:`HEATER_STUCK` keeps zone 2 in the alarm band for the rest of the hold, about
12 min in the fault-campaign test, which is 0.036 s of wall time at the campaign's 20000x
wait (an idle machine missed it between two samples) and 0.72 s at 1000x."""


def campaign_plans(
    spec: Any, out_dir: str | Path, *, say: Callable[[str], None] = print
) -> PlanFor:
    """Return ``plan_for(session, k, speedups)``: the whole campaign ``spec`` (a
    :class:`~couponlab.plans.campaign_file.CampaignFile`) in ``session``, whose run
    documents are in ``out_dir`` (the session's), its registry and timeline in
    ``out_dir/campaign-<k>/``."""
    from couponlab.plans.campaign_run import REGISTRY, campaign_in_session
    from couponlab.plans.campaign_timeline import Timeline
    from couponlab.samples import SampleRegistry

    def plan_for(session: Any, k: int, speedups: dict[str, float] | None) -> MsgGenerator[Any]:
        folder = Path(out_dir) / f"campaign-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        with SampleRegistry(folder / REGISTRY) as registry:
            runner = campaign_in_session(
                session, spec, registry, out_dir, speedups=speedups, say=say
            )
            runner.timeline = Timeline(folder)
            return (yield from runner.plan())

    return plan_for


def run_fault_campaign(
    open_session: Callable[[], AbstractContextManager[Any]],
    schedule: Sequence[ScheduledFault],
    plan_for: PlanFor,
    *,
    say: Callable[[str], None] = print,
) -> list[CampaignRun]:
    """Play ``schedule`` on campaign runs (:func:`campaign_runs`), each ``plan_for(session,
    k, speedups)`` in a session of its own (``open_session()``, a context manager: a
    :class:`~couponlab.session.Session` on a lab with twins, every one on the same
    ``out_dir``); return each campaign run's outcome. A campaign run that holds recoverable
    faults runs its twins at most :data:`RECOVERABLE_SPEEDUP` times real time.

    Raises
    ------
    InputError
        A session has no twins (faults are injected into twins only).
    """
    results = []
    for k, faults in enumerate(campaign_runs(schedule), start=1):
        run = CampaignRun([FaultOutcome(f) for f in faults])
        say(f"campaign run {k}: " + ", ".join(f"{f.device} {f.kind}" for f in faults))
        with open_session() as session:
            if session.twins is None:
                raise InputError("faults", "a fault campaign needs a lab with twins")
            speedups = _capped() if any(f.recoverable for f in faults) else None
            _play(session, run, plan_for(session, k, speedups), say)
            folder = session.log.folder
        run.lost = _lost(folder, run.emitted)
        for o in run.faults:
            o.completed, o.error, o.lab, o.active = run.completed, run.error, run.lab, run.active
            o.lost = run.lost
            say(
                f"  {o.fault.device} {o.fault.kind}: "
                + ("injected" if o.injected else "NOT injected")
                + (", suspended" if o.suspended else "")
            )
        say(
            "  campaign "
            + ("completed" if run.completed else f"ended: {run.error}; lab: {run.lab}")
            + f"; {'safe' if not any(run.active.values()) else 'NOT SAFE'} by the twins' "
            f"truth; {run.lost} of {len(run.emitted)} document(s) lost"
        )
        results.append(run)
    return results


def _capped() -> dict[str, float]:
    from couponlab.plans.campaign_run import SPEEDUPS

    return {phase: min(x, RECOVERABLE_SPEEDUP) for phase, x in SPEEDUPS.items()}


def _play(session: Any, run: CampaignRun, plan: MsgGenerator[Any], say: Any) -> None:
    control = session.twins.control
    operator = _Operator(control, run.faults, session.devices, session.suspenders)
    token = session.RE.subscribe(operator)
    try:
        result = session.run(plan)
        run.completed = result.exit_status == "success"
    except Exception as exc:
        run.error = describe_error(root_cause(exc))
        run.lab = lab_state(exc) or ""
    finally:
        session.RE.unsubscribe(token)
        if operator.watch is not None:  # (a task on the RunEngine's loop)
            session.RE.loop.call_soon_threadsafe(operator.watch.cancel)
        control.clear_faults()
        for device in {o.fault.device for o in run.faults if o.injected}:
            reset = getattr(session.devices.get(device), "clear_alarms", None)
            if callable(reset):  # a latched alarm would keep its suspender tripped
                try:
                    session.call(reset, timeout=30.0)
                except Exception as exc:
                    say(f"  resetting {device}'s alarms failed: {describe_error(exc)}")
    run.active = control.truth("active")
    run.emitted = operator.emitted
    run.runs = operator.runs


class _Operator:
    """A RunEngine subscriber: notes every document; injects each fault in turn once the
    runs it names have emitted its ``after_events`` events; clears a recoverable one (and
    resets the device's alarms) once a run records the suspension."""

    def __init__(
        self, control: Any, outcomes: list[FaultOutcome], devices: Any, suspenders: Any
    ) -> None:
        self.control = control
        self.pending = list(outcomes)
        self.devices = devices
        self.suspenders = suspenders
        self.watch: asyncio.Task[None] | None = None
        self.counted = 0
        self.plans: dict[str, str] = {}
        """Start and descriptor uid -> the run's plan_name."""
        self.resets: list[asyncio.Task[None]] = []
        self.emitted: list[tuple[str, str]] = []
        """(name, uid) of every document the RunEngine emitted."""
        self.runs = EmittedRuns()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        uid = str(doc.get("uid", ""))
        self.emitted.append((name, uid))
        self.runs.add(name, doc)
        if name == "start":
            self.plans[uid] = str(doc.get("plan_name", ""))
        elif name == "descriptor":
            self.plans[uid] = self.plans.get(str(doc.get("run_start", "")), "")
        if name != "event" or not self.pending:
            return
        o, f = self.pending[0], self.pending[0].fault
        interruption = doc["data"].get("interruption")
        if interruption is not None:
            if o.injected and interruption != "resume":
                self._suspended(o)
            return
        if o.injected or (f.plan and self.plans.get(str(doc["descriptor"])) != f.plan):
            return
        self.counted += 1
        if self.counted >= f.after_events:
            self.control.fault(f.device, f.kind, **f.params)
            o.injected = True
            if f.recoverable and self.suspenders is not None:
                self.watch = asyncio.get_running_loop().create_task(self._watch(o))

    async def _watch(self, o: FaultOutcome) -> None:
        """Notice a suspension between two runs (no run records it then) from the
        session's suspenders, as an operator sees it on the screen."""
        while not o.suspended:
            await asyncio.sleep(0.05)
            tripped = self.suspenders.tripped()
            if any(str(j).startswith(f"{o.fault.device}:") for j in tripped):
                self._suspended(o)

    def _suspended(self, o: FaultOutcome) -> None:
        if o.suspended:
            return
        o.suspended = True
        if o.fault.recoverable:
            self._clear(o.fault.device)
            self.pending.remove(o)
            self.counted = 0

    def _clear(self, device: str) -> None:
        self.control.clear_faults(device)
        reset = getattr(self.devices.get(device), "clear_alarms", None)
        if callable(reset):  # the operator resets the alarm the fault latched
            self.resets.append(asyncio.get_running_loop().create_task(reset()))
            self.resets[-1].add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("resetting alarms failed: %s", task.exception())


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


def check_store(runs: Sequence[CampaignRun], folder: str | Path, location: Any) -> None:
    """Write the log of ``folder`` into the store at ``location`` (a
    :class:`~couponlab.store.StoreLocation`, :func:`couponlab.session.store_location`), as
    ``couponlab data recover`` does, then count in each campaign run's ``unstored`` what
    the store lacks of what the RunEngine emitted (or holds twice)."""
    import dask

    from couponlab.ingest import recover
    from couponlab.store import connected

    # tables read in this thread: dask's default pool would outlive the check
    with dask.config.set(scheduler="synchronous"), connected(location) as store:
        recover(folder, store)
        for run in runs:
            run.unstored = run.runs.unstored(store)


def _store_column(runs: Sequence[CampaignRun], emitted: int) -> str:
    counts = [r.unstored for r in runs]
    if any(c is None for c in counts):
        return ""
    return f"; {sum(c or 0 for c in counts)} of {emitted} (store)"


def faults_table(runs: Sequence[CampaignRun]) -> list[str]:
    """Return the fault campaign's table: faults injected by kind, campaign runs completed,
    safe states reached after the non-recoverable faults, documents lost (from the log, and
    from the store if it was checked), and each fault's outcome."""
    outcomes = [o for r in runs for o in r.faults]
    kinds = Counter(o.fault.kind for o in outcomes if o.injected)
    fatal = [o for o in outcomes if not o.fault.recoverable]
    recoverable = [o for o in outcomes if o.fault.recoverable]
    emitted = sum(len(r.emitted) for r in runs)
    lines = [
        "faults injected by kind: "
        + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"),
        f"runs completed:          {sum(r.completed for r in runs)} of {len(runs)} campaign "
        f"runs ({sum(o.suspended and o.completed for o in recoverable)} of "
        f"{len(recoverable)} recoverable faults suspended a campaign that then completed)",
        f"safe states reached:     {sum(o.safe for o in fatal)} of {len(fatal)} "
        "non-recoverable faults (twins' ground truth)",
        f"documents lost:          {sum(r.lost for r in runs)} of {emitted} emitted "
        f"(run logs){_store_column(runs, emitted)}",
        "",
        f"{'run':<4} {'device':<10} {'kind':<11} {'expected':<11} {'outcome':<30} as expected",
    ]
    for k, run in enumerate(runs, start=1):
        for o in run.faults:
            expected = "resume" if o.fault.recoverable else "abort+safe"
            got = "completed" if o.completed else "aborted"
            got += " (suspended)" if o.suspended else ""
            got += "" if o.injected else " NOT INJECTED"
            got += "" if o.safe else " NOT SAFE"
            lines.append(
                f"{k:<4} {o.fault.device:<10} {o.fault.kind:<11} {expected:<11} {got:<30} "
                f"{'yes' if o.as_expected else 'NO'}"
            )
    return lines


__all__ = [
    "DEFAULT_SCHEDULE",
    "CampaignRun",
    "FaultOutcome",
    "ScheduledFault",
    "campaign_plans",
    "campaign_runs",
    "faults_table",
    "load_schedule",
    "run_fault_campaign",
]
