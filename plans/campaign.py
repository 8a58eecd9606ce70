"""The campaign: print, oxidise, map and test many coupons, the agent choosing the gradients.

Every step is an ordinary bluesky plan over devices built from the lab file, run in ONE
RunEngine (``campaign_plan``), and every step's record goes into the sample registry
(:mod:`couponlab.samples`) inside ``with registry.step(campaign, key)``: a campaign cut
short and resumed (``couponlab campaign resume DIR``) skips what completed and redoes
nothing. All campaign state is in the registry and the run documents; none is held only
here (the agent is re-told the completed coupons' analyses from their run documents).

Overlap (the default): a batch of ``carrier_batch`` coupons goes into the furnace carrier's
slots and its furnace program starts in a status group; while it runs in the instrument the
campaign measures the previous batch (map, analysis, tensile specimens), tells the agent,
and prints the next batch (its ``proposed`` gradients asked of the agent then); the open
exposure run takes its thermocouple scans when the furnace clock passes each scan time
(checked between steps) and the campaign waits on the program's group at the end. With
``sequential`` the same coupons run strictly one step after another, nothing overlapping:
one coupon per furnace program (the carrier's batching is overlap too), print it, expose it,
measure it.

Steps (registry keys): ``print-<coupon>`` (decision if proposed, print, to the rack),
``expose-<batch>.start`` (rack -> furnace slots, program started), ``expose-<batch>.finish``
(program done, cooled, slots -> rack, exposure recorded), ``measure-<coupon>`` (rack ->
stage, map, analysis, specimens pulled on the frame, back to the rack).

Sample moves go through the lab's transfer device (``bps.mv(transfer, Transfer(...))``):
station names ``build_plate``, ``furnace1.slot<k>``, ``stage1``, ``frame1``, ``rack.<k>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import numpy as np
from bluesky.utils import MsgGenerator

from couponlab.data import event_table
from couponlab.errors import InputError
from couponlab.interfaces.frame import TestSettings
from couponlab.interfaces.transfer import OperatorTransfer, Transfer
from couponlab.labfile import LabFile
from couponlab.plans.agents import CampaignAgent, CouponReport, CriticalContentAgent, SystemReach
from couponlab.plans.campaign_exposure import (
    OpenExposure,
    cool_down,
    empty_slots,
    finish_exposure,
    poll_exposure,
    programmed_exposure_s,
    ramp_s,
    reattach_exposure,
    start_exposure,
)
from couponlab.plans.campaign_file import SYSTEMS, CampaignFile, CouponSpec, Gradient, MapGrid
from couponlab.plans.campaign_timeline import Timeline
from couponlab.plans.coupon_maps import first_device, map_measurements, scanner_temperatures
from couponlab.plans.deposition_support import Record, call
from couponlab.samples import SampleRegistry
from couponlab.specimens import SS_J3

FAMILIES = (
    "gradient_furnace",
    "powder_feeder",
    "deposition_cell",
    "xy_stage",
    "oxide_profiler",
    "xrf_probe",
    "thermocouple_scanner",
    "test_frame",
)
"""The instrument families a campaign drives (the first device of each in the lab file)."""
TENSILE_POSITION_MM = 30.0
"""Where along the coupon a specimen's gauge is centred, mm."""
TENSILE_SETTINGS = TestSettings(crosshead_rate="0.075 mm/min", sample_rate="10 Hz")
"""ASTM E8 method C for the SS-J3 specimen (0.015/min of its 5 mm reduced section), sampled
at 10 Hz: tens of samples in the elastic part, a tenth of the default's data to move."""
DECISION_STREAM = "decision"
TRAY = "specimen_tray"
"""Where tested specimens go (the frame's dismount drops them; the robot never moves them)."""


@dataclass
class CampaignDevices:
    """The devices a campaign drives, by role, and their lab names."""

    furnace: Any
    feeder: Any
    cell: Any
    stage: Any
    profiler: Any
    xrf: Any
    scanner: Any
    frame: Any
    transfer: Any
    names: dict[str, str]
    """Family -> device name."""

    @classmethod
    def from_lab(
        cls, lab: LabFile, devices: Mapping[str, Any], transfer: Any | None = None
    ) -> CampaignDevices:
        """Pick the first device of each family of :data:`FAMILIES` from a session's devices;
        ``transfer`` moves the samples (default: the lab's transfer robot if it has one, else
        an :class:`~couponlab.interfaces.transfer.OperatorTransfer` asking at the prompt)."""
        names = {f: first_device(lab, f, "a campaign") for f in FAMILIES}
        d = {f: devices[n] for f, n in names.items()}
        robots = [e.name for e in lab.by_family("transfer_robot")]
        mover = transfer or (devices[robots[0]] if robots else OperatorTransfer(stations(lab)))
        return cls(
            d["gradient_furnace"],
            d["powder_feeder"],
            d["deposition_cell"],
            d["xy_stage"],
            d["oxide_profiler"],
            d["xrf_probe"],
            d["thermocouple_scanner"],
            d["test_frame"],
            mover,
            names,
        )


@dataclass
class CouponOutcome:
    """What the campaign learned of one coupon (for the summary)."""

    coupon_id: str
    system: str
    element: str
    low: float
    high: float
    proposed: bool
    reason: str = ""
    report: CouponReport | None = None
    tensile: list[dict[str, float]] = field(default_factory=list)


@dataclass
class CampaignSummary:
    """The campaign's results: per coupon, the agent's history, timeline and where data are."""

    campaign_id: str
    sequential: bool
    coupons: list[CouponOutcome]
    agent: CampaignAgent
    timeline: Timeline
    registry: Path
    out_dir: Path

    @property
    def makespan_h(self) -> float:
        """Return the campaign's makespan, h of instrument time."""
        return self.timeline.makespan_s() / 3600.0


Pace = Callable[[str], None]
"""Told the phase the campaign enters (``calibrate``, ``print``, ``transfer``, ``map``,
``tensile``, ``wait``); a twin lab's runner sets the simulation's speed-up from it (the
plan itself never touches the simulation)."""


def stations(lab: LabFile, rack: int = 12) -> list[str]:
    """Return the campaign's station names on a lab: ``build_plate``, the first furnace's
    carrier slots, the stage, the frame, ``rack.1`` .. ``rack.<rack>``."""
    furnace = lab.device(first_device(lab, "gradient_furnace", "a campaign"))
    slots = int(furnace.settings.get("carrier_slots", 1))
    return [
        "build_plate",
        *(f"{furnace.name}.slot{k}" for k in range(1, slots + 1)),
        first_device(lab, "xy_stage", "a campaign"),
        first_device(lab, "test_frame", "a campaign"),
        *(f"rack.{k}" for k in range(1, rack + 1)),
    ]


def _gradient_target(
    spec: CouponSpec, low: float, high: float, width_mm: float
) -> Callable[[Any, Any], dict[str, Any]]:
    system = SYSTEMS[spec.system]

    def target(x_mm: Any, y_mm: Any) -> dict[str, Any]:
        c = low + (high - low) * np.asarray(y_mm, float) / width_mm + 0.0 * np.asarray(x_mm)
        return {system.element: c, system.base: 1.0 - c}

    return target


class Campaign:
    """One campaign over a lab's devices, its registry and its run documents.

    Parameters
    ----------
    spec
        The campaign file.
    lab
        The lab file (thermocouple positions of the carrier scanner).
    devices
        The devices (:meth:`CampaignDevices.from_lab`).
    registry
        The sample registry (resume reads what completed from it).
    out_dir
        Folder of the run documents (``<uid>.jsonl``) and the timeline.
    sequential
        Run every step strictly one after another, one coupon per furnace program (no
        overlap, no shared furnace program), for comparison.
    agent
        The agent asked for ``proposed`` gradients (default from the file's policy).
    pace
        Told each phase (twin labs: the simulation's speed-up); None on hardware.
    say
        Where progress lines go (default: nowhere).
    """

    def __init__(
        self,
        spec: CampaignFile,
        lab: LabFile,
        devices: CampaignDevices,
        registry: SampleRegistry,
        out_dir: str | Path,
        *,
        sequential: bool = False,
        agent: CampaignAgent | None = None,
        pace: Pace | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        slots = int(getattr(devices.furnace, "num_slots", 1))
        if spec.carrier_batch > slots:
            raise InputError(
                devices.names["gradient_furnace"],
                f"carrier_batch {spec.carrier_batch} is more than the carrier's {slots} slots",
            )
        if sequential and spec.carrier_batch > 1:
            # strictly one step after another: the carrier's batching is itself overlap
            # (several coupons in one furnace program), so one coupon per program
            spec = spec.model_copy(update={"carrier_batch": 1})
        self.spec, self.lab, self.dev, self.reg = spec, lab, devices, registry
        self.out_dir = Path(out_dir)
        self.sequential = sequential
        reach = {name: SystemReach(s.element, 0.0, s.reach) for name, s in SYSTEMS.items()}
        self.agent: CampaignAgent = agent or CriticalContentAgent(
            reach=reach, margin=spec.policy.margin, min_width=spec.policy.min_width
        )
        self.pace = pace or (lambda phase: None)
        self.say = say or (lambda line: None)
        self.timeline = Timeline(self.out_dir)
        self.id = spec.id
        self.ids = spec.coupon_ids()
        self.outcomes: dict[str, CouponOutcome] = {}
        self.open: dict[str, OpenExposure] = {}
        self.calibration: Any = None
        self.decisions = 0
        self.offset_mm = math.nan
        self.md = {"campaign_id": spec.id}

    # -- plumbing -------------------------------------------------------------------------
    def _clock(self) -> MsgGenerator[float]:
        return float((yield from bps.rd(self.dev.furnace.clock)))

    def _between_steps(self) -> MsgGenerator[None]:
        for e in list(self.open.values()):
            yield from poll_exposure(self.dev.furnace, self.dev.scanner, e)

    def _busy(self, instrument: str, step: str, start: float) -> MsgGenerator[None]:
        # a step's plan ended (its run closed): a suspension from here on (a link lost, an
        # alarm) rewinds to here, never into the closed run's messages, which would replay
        # its readings outside any run
        yield from bps.checkpoint()
        end = yield from self._clock()
        self.timeline.add(instrument, step, start, end)

    def _move(self, sample: str, source: str, destination: str, step: str) -> MsgGenerator[None]:
        self.pace("transfer")
        t0 = yield from self._clock()
        yield from bps.mv(self.dev.transfer, Transfer(sample, source, destination))
        yield from self._busy(getattr(self.dev.transfer, "name", "transfer"), step, t0)
        self.reg.move(sample, destination, step=step)

    def _rack(self, coupon: str) -> str:
        return f"rack.{self.ids.index(coupon) + 1}"

    def _slot(self, coupon: str) -> str:
        batch = next(b for b in self.spec.batches() if self.ids.index(coupon) in b)
        return (
            f"{self.dev.names['gradient_furnace']}.slot{batch.index(self.ids.index(coupon)) + 1}"
        )

    # -- the whole campaign ---------------------------------------------------------------
    def plan(self) -> MsgGenerator[CampaignSummary]:
        """Run (or resume) the whole campaign; return its summary."""
        self.reg.start_campaign(self.id, self.spec.spec())
        profile = yield from call(self.dev.furnace.read_profile)
        positions = profile.positions_mm
        self.offset_mm = float(positions[0] + positions[-1]) / 2 - self.spec.coupon_length / 2
        batches = self.spec.batches()
        if self.sequential:
            for k in range(len(batches)):
                yield from self._print_batch(k)
                yield from self._start(k)
                yield from self._finish(k)
                yield from self._measure_batch(k)
        else:
            yield from self._print_batch(0)
            for k in range(len(batches)):
                yield from self._start(k)
                if k > 0:
                    yield from self._measure_batch(k - 1)
                if k + 1 < len(batches):
                    yield from self._print_batch(k + 1)
                yield from self._finish(k)
            yield from self._measure_batch(len(batches) - 1)
        return CampaignSummary(
            self.id,
            self.sequential,
            [self.outcomes[c] for c in self.ids if c in self.outcomes],
            self.agent,
            self.timeline,
            self.reg.path,
            self.out_dir,
        )

    # -- print ----------------------------------------------------------------------------
    def _print_batch(self, k: int) -> MsgGenerator[None]:
        for i in self.spec.batches()[k]:
            yield from self._print(i)
            yield from self._between_steps()

    def _calibrate(self) -> MsgGenerator[Any]:
        from couponlab.plans.calibrate_feeder import calibrate_feeder

        if self.calibration is None:
            self.pace("calibrate")
            hoppers = sorted({h for s in SYSTEMS.values() for h in s.hoppers})
            self.say(f"  calibrating feeder hoppers {hoppers} (before the first print)")
            self.calibration = yield from calibrate_feeder(self.dev.feeder, hoppers, md=self.md)
        return self.calibration

    def _print(self, i: int) -> MsgGenerator[None]:
        from couponlab.plans.print_graded import print_graded_coupon

        cid, spec = self.ids[i], self.spec.coupons[i]
        key = f"print-{cid}"
        system = SYSTEMS[spec.system]
        with self.reg.step(self.id, key) as done:
            if done:
                attrs = next(s for s in self.reg.samples(self.id) if s["id"] == cid)["attributes"]
                self.outcomes[cid] = CouponOutcome(
                    cid,
                    spec.system,
                    system.element,
                    attrs["low"],
                    attrs["high"],
                    attrs["proposed"],
                    attrs.get("reason", ""),
                )
                return
            proposed = not isinstance(spec.gradient, Gradient)
            decision: dict[str, Any] | None = None
            if isinstance(spec.gradient, Gradient):
                low, high, reason = spec.gradient.low, spec.gradient.high, "given in the file"
            else:  # the same agent state gives the same proposal when a step is redone
                proposal = self.agent.ask(spec.system)
                decision = proposal.as_dict()
                low, high, reason = proposal.low, proposal.high, proposal.reason
            uids: list[str] = []
            where = yield from self._where(cid)
            if where is None:
                cal = yield from self._calibrate()
                if decision is not None:
                    yield from self._decision_run(cid, spec.system, decision)
                self.pace("print")
                t0 = yield from self._clock()
                yield from with_run_uids(
                    print_graded_coupon(
                        self.dev.cell,
                        [self.dev.feeder],
                        _gradient_target(spec, low, high, self.spec.coupon_width),
                        {self.dev.names["powder_feeder"]: cal},
                        coupon_id=cid,
                        length=self.spec.coupon_length,
                        width=self.spec.coupon_width,
                        md={
                            **self.md,
                            "coupon_id": cid,
                            "system": spec.system,
                            # mass fractions of the graded element across the coupon
                            "gradient": {"element": system.element, "low": low, "high": high},
                        },
                    ),
                    uids,
                )
                yield from self._busy(self.dev.names["deposition_cell"], key, t0)
                transfer = self.dev.transfer
                yield from call(lambda: transfer.record("build_plate", cid))
            else:  # printed before a crash cut the step short: never printed twice
                self.say(f"  {cid} is at {where} already: not printed again")
            if decision is not None:
                self._record_decision(cid, spec.system, decision)
            attrs = {
                "system": spec.system,
                "element": system.element,
                "low": low,
                "high": high,
                "proposed": proposed,
                "reason": reason,
                "length_mm": self.spec.coupon_length,
                "width_mm": self.spec.coupon_width,
            }
            self.reg.add_coupon(cid, self.id, print_params=attrs, location="build_plate")
            for uid in uids:
                self.reg.record_run(cid, uid, "print_graded_coupon", key)
            yield from self._move(cid, "build_plate", self._rack(cid), key)
            self.outcomes[cid] = CouponOutcome(
                cid, spec.system, system.element, low, high, proposed, reason
            )
            self.say(
                f"  printed {cid} ({spec.system}, {system.element} {low:.3f} -> {high:.3f}"
                f"{', proposed' if proposed else ''})"
            )

    def _where(self, sample: str) -> MsgGenerator[str | None]:
        """Return where the transfer device knows ``sample`` to be (None: nowhere)."""
        transfer = self.dev.transfer
        held = yield from call(transfer.holding)
        if held == sample:
            return "gripper"
        stations = yield from call(transfer.stations)
        return next((st for st, sid in stations.items() if sid == sample), None)

    def _record_decision(self, coupon: str, system: str, proposal: dict[str, Any]) -> None:
        """Record the agent's decision for ``coupon`` in the registry (seq: the coupon's
        index in the file)."""
        self.reg.record_decision(
            self.id,
            self.ids.index(coupon),
            agent=type(self.agent).__name__,
            proposal={"coupon_id": coupon, "system": system, **proposal},
            reason=str(proposal["reason"]),
        )

    def _decision_run(
        self, coupon: str, system: str, proposal: dict[str, Any]
    ) -> MsgGenerator[None]:
        """Record the agent's decision in a run of its own (stream ``decision``)."""
        values = {
            "low": float(proposal["low"]),
            "high": float(proposal["high"]),
            "element": str(proposal["element"]),
            "reason": str(proposal["reason"]),
        }
        md = {
            **self.md,
            "plan_name": "campaign_decision",
            "coupon_id": coupon,
            "agent": type(self.agent).__name__,
            "system": system,
            "proposal": proposal,
        }
        yield from bps.open_run(md=md)
        yield from bps.trigger_and_read(
            [Record("proposal", values, {"low": "", "high": ""})], name=DECISION_STREAM
        )
        yield from bps.close_run()

    # -- expose ---------------------------------------------------------------------------
    def _batch_ids(self, k: int) -> list[str]:
        return [self.ids[i] for i in self.spec.batches()[k]]

    def _start(self, k: int) -> MsgGenerator[None]:
        batch, coupons = f"B{k + 1}", self._batch_ids(k)
        key = f"expose-{batch}.start"
        with self.reg.step(self.id, key) as done:
            if done:
                return
            furnace = self.dev.furnace
            profile = yield from call(furnace.read_profile)
            if float(np.nanmax(profile.temperatures_c)) >= self.spec.exposure.unload_below:
                self.pace("wait")  # hot from an earlier job: cool before loading
                yield from cool_down(furnace, self.spec.exposure)
            for cid in coupons:  # into the cold furnace (the robot's interlock)
                yield from self._move(cid, self._rack(cid), self._slot(cid), key)
            self.pace("transfer")
            placed = []
            for k in range(1, len(coupons) + 1):
                placed.append(str((yield from bps.rd(furnace.slots[k].coupon_id))))
            state = str((yield from bps.rd(furnace.program.state)).value)
            e: OpenExposure | None
            if placed == coupons and state in ("running", "held"):
                # started before a crash cut this step short: re-attach, never start twice
                remaining = float((yield from bps.rd(furnace.program.remaining)))
                now = yield from self._clock()
                x = self.spec.exposure
                t0 = now + remaining - (ramp_s(x) + x.hold)
                e = yield from reattach_exposure(
                    furnace, batch, coupons, x, program_start_s=t0, md=self.md
                )
                assert e is not None  # running: a run is open
                e.program_start_s = t0
                self.say(f"  batch {batch}'s program was running already: re-attached")
            else:
                e = yield from start_exposure(
                    furnace,
                    self.dev.scanner,
                    batch,
                    coupons,
                    self.spec.exposure,
                    offset_mm=self.offset_mm,
                    length_mm=self.spec.coupon_length,
                    md=self.md,
                )
            self.open[batch] = e
            yield from bps.checkpoint()  # a suspension never replays the program's start
            self.say(
                f"  furnace program started for batch {batch} ({', '.join(coupons)}): "
                f"{self.spec.exposure.hot:g} -> {self.spec.exposure.cold:g} degC, "
                f"{self.spec.exposure.hold / 3600:g} h"
            )

    def _finish(self, k: int) -> MsgGenerator[None]:
        batch, coupons = f"B{k + 1}", self._batch_ids(k)
        key = f"expose-{batch}.finish"
        with self.reg.step(self.id, key) as done:
            if done:
                return
            first = self._exposure_start(batch)
            e = self.open.pop(batch, None)
            if e is None:  # resumed: the program was started by the campaign before the crash
                e = yield from reattach_exposure(
                    self.dev.furnace,
                    batch,
                    coupons,
                    self.spec.exposure,
                    program_start_s=float(first["program_start_s"]),
                    md=self.md,
                )
                self.say(f"  re-attached to batch {batch}'s furnace program")
            self.pace("wait")
            yield from finish_exposure(self.dev.furnace, self.dev.scanner, e, self.spec.exposure)
            t_end = yield from self._clock()
            self.timeline.add(
                self.dev.names["gradient_furnace"], key, float(first["program_start_s"]), t_end
            )
            for cid in coupons:
                yield from self._move(cid, self._slot(cid), self._rack(cid), key)
            yield from empty_slots(self.dev.furnace, len(coupons))
            x = self.spec.exposure
            self.reg.record_exposure(
                coupons,
                hot_c=x.hot,
                cold_c=x.cold,
                hold_s=x.hold,
                exposure_s=programmed_exposure_s(x),
                run_uid=str(first["uid"]),
            )
            for cid in coupons:  # the run that started it (a re-attached run continues it)
                self.reg.record_run(cid, str(first["uid"]), "campaign_exposure", key)
            self.say(f"  batch {batch} out of the furnace (cooled below {x.unload_below:g} degC)")

    # -- measure --------------------------------------------------------------------------
    def _measure_batch(self, k: int) -> MsgGenerator[None]:
        for cid in self._batch_ids(k):
            yield from self._measure(cid)
            yield from self._between_steps()

    def _exposure_runs(self, batch: str) -> list[tuple[Path, dict[str, Any]]]:
        """Return (file, start document) of each run of a batch's exposure: the run that
        started its program, and any run that re-attached to it after a crash."""
        found = []
        for path in sorted(self.out_dir.glob("*.jsonl")):
            with path.open(encoding="utf-8") as f:
                first = f.readline()
            if '"campaign_exposure"' not in first:
                continue
            start = json.loads(first)["doc"]
            if start.get("campaign_id") == self.id and start.get("batch") == batch:
                found.append((path, start))
        return sorted(found, key=lambda item: float(item[1]["time"]))

    def _exposure_start(self, batch: str) -> dict[str, Any]:
        """Return the start document of the run that started a batch's program."""
        started = [s for _, s in self._exposure_runs(batch) if not s.get("reattached")]
        if not started:
            raise InputError(self.id, f"no exposure run of batch {batch} in {self.out_dir}")
        return started[-1]

    def _exposure_scans(self, cid: str) -> tuple[Any, Any]:
        """Return (thermocouple positions mm, scans degC) of a coupon's hold, from the
        exposure runs' documents (the scans taken during the hold)."""
        from couponlab.plans.campaign_exposure import hold_window

        batch = self._batch_of(cid)
        start = float(self._exposure_start(batch)["program_start_s"])
        x = self.spec.exposure
        lo, hi = hold_window(start, x.hot, x.ramp_rate, x.hold)
        scanner = self.dev.names["thermocouple_scanner"]
        clock_key = f"{self.dev.names['gradient_furnace']}-clock-sim_time"
        positions: Any = None
        rows: list[Any] = []
        for path, _ in self._exposure_runs(batch):
            table = event_table(path)
            if not table:
                continue
            positions, scans = scanner_temperatures(table, scanner, self.lab)
            clock = np.asarray(table[clock_key], float)
            rows.extend(scans[(clock >= lo) & (clock <= hi)])
        if positions is None or not rows:
            raise InputError(cid, "no thermocouple scan of its hold in the exposure runs")
        return positions, np.asarray(rows, float)

    def _batch_of(self, cid: str) -> str:
        i = self.ids.index(cid)
        return f"B{next(k for k, b in enumerate(self.spec.batches()) if i in b) + 1}"

    def _measure(self, cid: str) -> MsgGenerator[None]:
        from couponlab.plans.raster_map import raster_map
        from couponlab.plans.tensile_test import tensile_test

        i = self.ids.index(cid)
        spec = self.spec.coupons[i]
        grid: MapGrid = spec.map or self.spec.map
        length, width = self.spec.coupon_length, self.spec.coupon_width
        x_mm = np.linspace(3.0, length - 3.0, grid.x_points)
        y_mm = np.linspace(1.0, width - 0.5, grid.y_rows)
        key = f"measure-{cid}"
        outcome = self.outcomes[cid]
        with self.reg.step(self.id, key) as done:
            if done:  # re-tell the agent from the documents: the same analysis as before
                (uid,) = [
                    r["run_uid"]
                    for r in self.reg.genealogy(cid)["runs"]
                    if r["plan"] == "raster_map"
                ]
                outcome.report = self._analyse(cid, uid, grid, x_mm)
                self.agent.tell(outcome.report)
                return
            yield from self._move(cid, self._rack(cid), self.dev.names["xy_stage"], key)
            self.pace("map")
            t0 = yield from self._clock()
            stage = self.dev.stage
            yield from call(lambda: stage.load_coupon(cid, length, width))
            uid = yield from raster_map(
                [self.dev.profiler, self.dev.xrf],
                stage,
                (float(x_mm[0]), float(x_mm[-1]), grid.x_points),
                (float(y_mm[0]), float(y_mm[-1]), grid.y_rows),
                dwell=f"{grid.dwell} s",
                snake=False,
                md={**self.md, "coupon_id": cid},
            )
            yield from call(stage.unload_coupon)
            yield from self._busy(self.dev.names["xy_stage"], key, t0)
            self.reg.record_run(cid, uid, "raster_map", key)
            outcome.report = self._analyse(cid, uid, grid, x_mm)
            self.agent.tell(outcome.report)
            # tensile specimens, cut across the coupon at the given positions and mounted in
            # the frame's grips (machining and mounting are the operator's, not the robot's)
            frame = self.dev.frame
            for j, across in enumerate(spec.specimens or self.spec.specimens, start=1):
                sid = f"{cid}-T{j}"
                self.reg.add_specimen(
                    sid,
                    cid,
                    geometry={
                        "across_mm": across,
                        "position_mm": TENSILE_POSITION_MM,
                        "designation": SS_J3.designation,
                        "standard": "ASTM E8 method C",
                    },
                    location=self.dev.names["test_frame"],
                )
                self.pace("tensile")
                t1 = yield from self._clock()
                uids: list[str] = []
                result = yield from with_run_uids(
                    tensile_test(
                        frame,
                        cid,
                        f"{TENSILE_POSITION_MM} mm",
                        across=f"{across} mm",
                        coupon_length=f"{length} mm",
                        coupon_width=f"{width} mm",
                        geometry=SS_J3,
                        settings=TENSILE_SETTINGS,
                        md={**self.md, "specimen_id": sid},
                    ),
                    uids,
                )
                yield from call(frame.dismount)
                yield from self._busy(self.dev.names["test_frame"], key, t1)
                for u in uids:
                    self.reg.record_run(sid, u, "tensile_test", key)
                    self.reg.record_run(cid, u, "tensile_test", key)
                # the frame's dismount leaves the broken halves in its tray
                self.reg.move(sid, TRAY, step=key)
                outcome.tensile.append(
                    {
                        "across_mm": across,
                        "yield_mpa": result.yield_strength,
                        "uts_mpa": result.uts,
                        "elongation_pct": result.total_elongation,
                    }
                )
            yield from self._move(cid, self.dev.names["xy_stage"], self._rack(cid), key)
            r = outcome.report
            where = (
                f"critical {r.element} {r.estimate:.3f} +/- {r.sigma:.3f}"
                if r.located
                else f"critical {r.element} {r.side} the range"
            )
            self.say(f"  measured {cid}: {where}")

    def _analyse(self, cid: str, map_uid: str, grid: MapGrid, x_mm: Any) -> CouponReport:
        from couponlab.plans.agents import report_coupon

        outcome = self.outcomes[cid]
        table = event_table(self.out_dir / f"{map_uid}.jsonl")
        positions, scans = self._exposure_scans(cid)
        measured = map_measurements(
            table,
            profiler=self.dev.names["oxide_profiler"],
            xrf=self.dev.names["xrf_probe"],
            x_mm=x_mm,
            rows=grid.y_rows,
            dwell_s=grid.dwell,
            tc_positions_mm=positions,
            tc_scans_c=scans,
            hold_s=self.spec.exposure.hold,
            elements=(outcome.element,),
        )
        return report_coupon(
            measured,
            outcome.element,
            system=outcome.system,
            coupon_id=cid,
            printed=(outcome.low, outcome.high),
        )


def with_run_uids(plan: MsgGenerator[Any], uids: list[str]) -> MsgGenerator[Any]:
    """Run ``plan``, appending the uid of every run it opens to ``uids``; return its result."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            msg = plan.throw(error) if error is not None else plan.send(reply)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            reply = yield msg
        except GeneratorExit:
            plan.close()
            raise
        except BaseException as exc:  # thrown in by the RunEngine: pass it to the plan
            error, reply = exc, None
            continue
        if msg.command == "open_run" and isinstance(reply, str):
            uids.append(reply)


__all__ = [
    "FAMILIES",
    "Campaign",
    "CampaignDevices",
    "CampaignSummary",
    "CouponOutcome",
    "with_run_uids",
]
