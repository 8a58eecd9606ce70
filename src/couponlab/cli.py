"""The ``couponlab`` command.

``couponlab twin serve LABFILE``  start the twins of a lab in one process (one world, one
                                  port per instrument, and the twin control channel, all on
                                  127.0.0.1 unless ``--bind HOST``); Ctrl-C / SIGTERM stops
                                  it within a second
``couponlab twin fault TARGET DEVICE KIND``  inject a fault into a running twin (TARGET: a
                                  resolved lab file or ``tcp://HOST:PORT`` of its control
                                  channel; ``--for S`` virtual s, ``--wall S`` wall s,
                                  ``-p KEY=VALUE``); ``twin faults TARGET`` lists them,
                                  ``twin clear TARGET [DEVICE]`` ends them
``couponlab check LABFILE``       connect to every device; print identity, state, readbacks
                                  (starts the lab's twins first if it has any)
``couponlab demo``                run the one-coupon job: print, oxidise, map, analyse, test
``couponlab campaign run [FILE]`` run a campaign (default: the bundled one on the twins)
``couponlab campaign resume DIR`` resume the campaign in DIR from its last completed step
``couponlab faults run``         a fault campaign on the twins: the campaign (``--campaign
                                  FILE``, default the bundled one) with ``--schedule FILE``'s
                                  faults (default: links lost then back, gas lost, power
                                  losses, a jam) injected at points of it; prints faults by
                                  kind, runs completed, safe states reached, documents lost
                                  (exit 1 if any fault did not end as expected)
``couponlab data recover [OUT]`` write whatever the run log of OUT (default ``runs``) holds and
                                  the store does not yet (runs a killed process left open
                                  are marked first); idempotent
``couponlab report CAMPAIGN``    write the campaign's report (HTML, Markdown, PNG, CSV, JSON)
                                  from the store of ``--store DIR`` (default runs/campaign)
                                  into ``--out`` (default ``DIR/report-CAMPAIGN``)
``couponlab ipython [LABFILE]``  IPython with the lab's devices by name, a RunEngine with
                                  progress bars, live table and figures, persistent
                                  ``RE.md`` and the plans (``-- ARGS``: IPython's)
``couponlab samples ...``         query the sample registry (``campaigns``, ``list``, ``show
                                  ID``; ``--db PATH``, ``--json``): couponlab.samples

Global options: ``--debug`` (full tracebacks on the screen too) and ``--log FILE`` (where the
log goes: ``<out>/couponlab.log`` for ``demo``, ``runs/couponlab.log`` otherwise). Exit codes
are :class:`ExitCode` (README's command table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from couponlab.errors import CouponlabError, InputError
from couponlab.failure import cleanup_failures, lab_state, one_line, root_cause
from couponlab.labfile import LabFile, LabFileError, load_lab
from couponlab.samples import RegistryError
from couponlab.samples import _command as samples_command

if TYPE_CHECKING:
    from couponlab.twins import TwinControl


class ExitCode(IntEnum):
    """Exit codes of the ``couponlab`` command (stable; documented in README)."""

    OK = 0
    """Everything ran, and every result check passed."""
    CHECK_FAILED = 1
    """Everything ran, but a result check failed (``demo``: a truth, a row's Q or the
    critical Cr content, more than 4 sigma from the estimate; ``check``: a device did not
    answer)."""
    USAGE = 2
    """Bad command line, lab file or input refused before anything was sent."""
    DEVICE_FAULT = 3
    """An instrument or its link failed (timeout, refusal, interlock, lost connection, a
    device that did not reach its safe state)."""
    INTERNAL = 4
    """An unexpected error: a bug (the traceback is in the log file)."""
    INTERRUPTED = 130
    """Ctrl-C (the run was ended and the lab put in its safe state)."""


def exit_code(exc: BaseException) -> ExitCode:
    """Return the exit code for an error that ended a command."""
    from bluesky.utils import RunEngineInterrupted

    if isinstance(exc, KeyboardInterrupt | RunEngineInterrupted):
        return ExitCode.INTERRUPTED
    cause = root_cause(exc)
    if isinstance(cause, InputError):
        return ExitCode.USAGE
    if isinstance(cause, CouponlabError):
        return ExitCode.DEVICE_FAULT
    if type(exc).__name__ == "NotConnectedError":  # ophyd-async: a device did not connect
        return ExitCode.DEVICE_FAULT
    return ExitCode.INTERNAL


STOP_GRACE_S = 0.9
"""A twin process ends within this long after SIGTERM/SIGINT, wall s, clean stop or not."""


def sample_lab_path() -> Path:
    """Return the path of the bundled simulated lab file (every device a twin)."""
    return Path(str(resources.files("couponlab") / "labs" / "sim_lab.yaml"))


def _lab_arg(value: str) -> LabFile:
    return load_lab(sample_lab_path() if value == "sim" else value)


# -- twin serve ----------------------------------------------------------------------------
def freeze_startup_heap() -> None:
    """Collect, then move every object alive now out of the garbage collector's reach, and
    turn the collector back on (``_cmd_twin_serve`` starts the twins with it off).

    A twin process holds about 570,000 long-lived objects once its twins listen (the OPC UA
    address spaces most of all). While they were built, the collector's full collections
    scanned them again and again: 8 of them, 1.8 s in all, the quarter of a start. Frozen, a
    later full collection scans only what the run made since (``gc.freeze``; decision 0073).
    Objects frozen here are never collected, so call it once, after start-up.
    """
    gc.collect()
    gc.freeze()
    gc.enable()


def _cmd_twin_serve(args: argparse.Namespace) -> int:
    from couponlab.twins import serve_twins

    lab = _lab_arg(args.labfile)
    n = sum(d.twin for d in lab.devices)
    if n == 0:
        print(f"lab {lab.name!r} has no device with twin: true; nothing to serve", file=sys.stderr)
        return 2
    if lab.twin_control is not None:
        print(
            f"lab {lab.name!r} is already served (twin_control: {lab.twin_control}); "
            "serve the lab file it was resolved from",
            file=sys.stderr,
        )
        return 2

    def ready(resolved: LabFile) -> None:
        for d in resolved.devices:
            if d.twin:
                print(f"{d.name:<16} {d.family:<22} {d.address}", flush=True)
        print(f"{'control':<16} {'twin control channel':<22} {resolved.twin_control}", flush=True)
        where = f"; resolved lab file: {args.resolved}" if args.resolved else ""
        print(f"serving {n} twin(s) of lab {lab.name!r}{where}. Ctrl-C to stop.", flush=True)
        freeze_startup_heap()

    gc.disable()  # until the twins listen: see freeze_startup_heap
    asyncio.run(
        serve_twins(
            lab,
            args.resolved,
            on_ready=ready,
            control_port=args.control_port,
            parent_pid=os.getppid() if args.exit_with_parent else None,
            hard_exit_after_s=STOP_GRACE_S,
            bind=args.bind,
        )
    )
    print("twins stopped", flush=True)
    return 0


# -- twin fault / faults / clear -----------------------------------------------------------
def _control_of(target: str) -> TwinControl:
    """Return the control client of ``target``: ``tcp://HOST:PORT`` or a resolved lab file."""
    from couponlab.twins import TwinControl

    if target.startswith("tcp://"):
        return TwinControl(target)
    lab = _lab_arg(target)
    if lab.twin_control is None:
        raise InputError(
            "",
            f"lab file {target!r} names no twin_control: give the lab file that "
            "'couponlab twin serve LABFILE --resolved OUT' wrote (OUT), or tcp://HOST:PORT",
        )
    return TwinControl(lab.twin_control)


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError("", f"parameter {text!r} is not KEY=VALUE")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _refused(exc: Exception) -> int:
    print(str(exc), file=sys.stderr)
    return int(ExitCode.USAGE)


def _cmd_twin_fault(args: argparse.Namespace) -> int:
    from couponlab.twins import TwinControlRefusedError

    params = dict(_param(p) for p in args.param)
    control = _control_of(args.target)
    try:
        fault = control.fault(
            args.device, args.kind, for_s=args.for_s, wall_s=args.wall_s, **params
        )
    except TwinControlRefusedError as exc:
        return _refused(exc)
    finally:
        control.close()
    print(json.dumps(fault))
    return int(ExitCode.OK)


def _cmd_twin_faults(args: argparse.Namespace) -> int:
    control = _control_of(args.target)
    try:
        print(json.dumps(control.faults(), indent=2))
    finally:
        control.close()
    return int(ExitCode.OK)


def _cmd_twin_clear(args: argparse.Namespace) -> int:
    from couponlab.twins import TwinControlRefusedError

    control = _control_of(args.target)
    try:
        ended = control.clear_faults(args.device, args.kind)
    except TwinControlRefusedError as exc:
        return _refused(exc)
    finally:
        control.close()
    print(json.dumps(ended))
    return int(ExitCode.OK)


# -- check ---------------------------------------------------------------------------------
def _format_value(value: Any, units: str) -> str:
    u = f" {units}" if units else ""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return "[]"
        if value.dtype.kind == "f":
            if np.isnan(value).all():  # (nanmin of all-NaN warns)
                return f"[{value.size}] no value yet"
            return f"[{value.size}] {np.nanmin(value):.4g}..{np.nanmax(value):.4g}{u}"
        return f"[{value.size}]"
    if isinstance(value, float):
        return f"{value:.6g}{u}"
    return f"{value}{u}"


async def _check(lab: LabFile, timeout: float) -> int:
    from couponlab.lab import make_device

    failures = 0
    for entry in lab.devices:
        print(f"== {entry.name} ({entry.family}) at {entry.address}")
        device: Any = None
        try:
            device = make_device(entry)
            await device.connect(timeout=timeout)
            print(f"   identity : {await device.identify()}")
            print(f"   state    : {await device.state()}")
            reading = await device.read()
            described = await device.describe()
            for key, r in reading.items():
                units = described.get(key, {}).get("units", "") or ""
                print(f"   {key:<40} {_format_value(r['value'], units)}")
        except Exception as exc:  # typed errors, and ophyd-async's connect errors that wrap them
            failures += 1
            print(f"   FAILED   : {type(exc).__name__}: {exc}")
        finally:
            if device is not None and hasattr(device, "disconnect"):
                with contextlib.suppress(Exception):
                    await device.disconnect()
    print(f"{len(lab.devices) - failures} of {len(lab.devices)} device(s) OK")
    return 1 if failures else 0


def _cmd_check(args: argparse.Namespace) -> int:
    lab = _lab_arg(args.labfile)
    if lab.twin_control is not None or not any(d.twin for d in lab.devices):
        return asyncio.run(_check(lab, args.timeout))
    from couponlab.twins import TwinProcess

    print(f"starting the twins of lab {lab.name!r} in a process of their own")
    with TwinProcess(lab) as twins:
        return asyncio.run(_check(twins.lab, args.timeout))


# -- demo ----------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from couponlab.plans.demo import run_demo

    code: int = run_demo(_lab_arg(args.lab), out_dir=Path(args.out))
    return code


# -- campaign ------------------------------------------------------------------------------
def _cmd_campaign(args: argparse.Namespace) -> int:
    from couponlab.plans.campaign_run import run_campaign

    if args.campaign_cmd == "resume":
        run_campaign(out_dir=Path(args.out), resume=True)
    else:
        run_campaign(args.file, out_dir=Path(args.out), sequential=args.sequential)
    return 0


# -- faults --------------------------------------------------------------------------------
def _cmd_faults_run(args: argparse.Namespace) -> int:
    from couponlab.plans.campaign_file import load_campaign
    from couponlab.plans.campaign_run import campaign_lab
    from couponlab.plans.fault_campaign import (
        DEFAULT_SCHEDULE,
        campaign_plans,
        campaign_runs,
        check_store,
        faults_table,
        load_schedule,
        run_fault_campaign,
    )
    from couponlab.session import Session, store_location
    from couponlab.suspenders import SuspenderSettings

    source = Path(args.campaign) if args.campaign else None
    spec = load_campaign(source)
    lab = _lab_arg(args.lab) if args.lab else campaign_lab(spec, source)
    schedule = load_schedule(args.schedule) if args.schedule else list(DEFAULT_SCHEDULE)
    unknown = sorted({f.device for f in schedule} - {d.name for d in lab.devices if d.twin})
    if unknown:
        raise InputError("faults", f"schedule names {unknown}, not twins of lab {lab.name!r}")
    out = Path(args.out)
    print(
        f"couponlab faults: {len(schedule)} fault(s) in campaign {spec.id!r} "
        f"({len(spec.coupons)} coupons) on lab {lab.name!r}, "
        f"{len(campaign_runs(schedule))} campaign run(s)"
    )
    settings = SuspenderSettings(link_probe_s=0.2)
    t0 = time.monotonic()
    runs = run_fault_campaign(
        lambda: Session(lab, out_dir=out, store=False, suspenders=settings),
        schedule,
        campaign_plans(spec, out, say=lambda line: None),
    )
    print("writing the run logs into the store, and checking it")
    check_store(runs, out, store_location(lab, out))
    print()
    for line in faults_table(runs):
        print(line)
    print(f"\ndone in {time.monotonic() - t0:.0f} s wall time")
    ok = all(o.as_expected for r in runs for o in r.faults) and not any(r.unstored for r in runs)
    return int(ExitCode.OK if ok else ExitCode.CHECK_FAILED)


# -- data ----------------------------------------------------------------------------------
RECOVER_WAIT_S = 300.0
"""Longest wait of ``couponlab data recover`` for another process to release the store, s."""


def _cmd_data_recover(args: argparse.Namespace) -> int:
    from couponlab.ingest import missing, recover
    from couponlab.store import open_store

    out = Path(args.out)
    if not out.is_dir():
        raise InputError("data", f"no output folder {out}")
    with open_store(out) as store:
        # a session's ingest process may still be finishing after its session ended
        report = recover(out, store, wait=RECOVER_WAIT_S)
        lacking = missing(out, store)
    print(
        f"{out}: {report.documents} document(s) written, {len(report.completed)} run(s) "
        f"completed, {len(report.redone)} half-written run(s) written again"
    )
    for uid, why in report.failed.items():
        print(f"  {uid}: refused by the store: {why}")
    for uid, gaps in lacking.items():
        print(f"  {uid}: missing in the store: {', '.join(gaps[:5])}")
    return int(ExitCode.CHECK_FAILED) if lacking or report.failed else int(ExitCode.OK)


# -- report --------------------------------------------------------------------------------
def _cmd_report(args: argparse.Namespace) -> int:
    from couponlab.ingest import recover
    from couponlab.plans.campaign_report import write_report
    from couponlab.store import open_store

    where = Path(args.store)
    if not where.is_dir():
        raise InputError("report", f"no output folder {where}")
    out = Path(args.out) if args.out else where / f"report-{args.campaign}"
    with open_store(where) as store:
        if not args.no_recover:  # bring the store up to date with the log first
            recover(where, store)
        page = write_report(store, args.campaign, out)
    print(f"report of campaign {args.campaign!r}: {page}")
    return int(ExitCode.OK)


# -- ipython -------------------------------------------------------------------------------
def _cmd_ipython(args: argparse.Namespace) -> int:
    from couponlab.plans.ipython_profile import start

    return start(_lab_arg(args.labfile), out_dir=Path(args.out), ipython_args=args.passthrough)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``couponlab`` command."""
    p = argparse.ArgumentParser(prog="couponlab", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--debug", action="store_true", help="show full tracebacks (always in the log file)"
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        help="log file (default: <out>/couponlab.log for demo and campaign, else "
        "runs/couponlab.log)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    twin = sub.add_parser("twin", help="digital twins").add_subparsers(
        dest="twin_cmd", required=True
    )
    serve = twin.add_parser("serve", help="serve the twins of a lab file until Ctrl-C")
    serve.add_argument("labfile", help="lab file (YAML), or 'sim' for the bundled lab")
    serve.add_argument(
        "--resolved", metavar="PATH", help="write the lab file with the real (resolved) ports here"
    )
    serve.add_argument(
        "--control-port",
        type=int,
        default=0,
        metavar="PORT",
        help="port of the twin control channel (default: a free port)",
    )
    serve.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="HOST",
        help="host every twin and the control channel listen on, whatever the lab file's "
        "addresses say (default: 127.0.0.1; twins have no authentication; see docs/security.md)",
    )
    serve.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop serving when the process that started this one ends",
    )
    serve.set_defaults(func=_cmd_twin_serve)

    target_help = "resolved lab file of running twins, or tcp://HOST:PORT of their control channel"
    fault = twin.add_parser("fault", help="inject a fault into a running twin")
    fault.add_argument("target", help=target_help)
    fault.add_argument("device", help="device name of the twin")
    fault.add_argument(
        "kind",
        help="drop, stall, garble, truncate, error, sensor_loss, jam, gas_loss or power_loss",
    )
    duration = fault.add_mutually_exclusive_group()
    duration.add_argument(
        "--for",
        dest="for_s",
        type=float,
        metavar="SECONDS",
        help="end the fault after this many virtual seconds (the world's clock)",
    )
    duration.add_argument(
        "--wall",
        dest="wall_s",
        type=float,
        metavar="SECONDS",
        help="end the fault after this many wall seconds",
    )
    fault.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the kind (zone=3, channel=2, hopper=1, axis=Y, code=-240, ...)",
    )
    fault.set_defaults(func=_cmd_twin_fault)
    faults = twin.add_parser("faults", help="list active faults and what each twin can do")
    faults.add_argument("target", help=target_help)
    faults.set_defaults(func=_cmd_twin_faults)
    clear = twin.add_parser("clear", help="end active faults")
    clear.add_argument("target", help=target_help)
    clear.add_argument("device", nargs="?", help="only this device's (default: every device)")
    clear.add_argument("--kind", help="only faults of this kind")
    clear.set_defaults(func=_cmd_twin_clear)

    check = sub.add_parser("check", help="connect to every device and print its state")
    check.add_argument("labfile", help="lab file (YAML), or 'sim' for the bundled lab")
    check.add_argument("--timeout", type=float, default=5.0, help="connect timeout, s")
    check.set_defaults(func=_cmd_check)

    demo = sub.add_parser("demo", help="run a simulated campaign on the twins")
    demo.add_argument("--lab", default="sim", help="lab file with twins (default: bundled)")
    demo.add_argument("--out", default="runs", help="folder for the run documents")
    demo.set_defaults(func=_cmd_demo)

    campaign = sub.add_parser("campaign", help="run or resume a campaign").add_subparsers(
        dest="campaign_cmd", required=True
    )
    run = campaign.add_parser("run", help="run a campaign file (default: the bundled one)")
    run.add_argument("file", nargs="?", help="campaign file (YAML); default: the bundled one")
    run.add_argument(
        "--out", default="runs/campaign", help="folder for the run documents and the registry"
    )
    run.add_argument(
        "--sequential",
        action="store_true",
        help="run every step one after another, nothing overlapping (for comparison)",
    )
    run.set_defaults(func=_cmd_campaign)
    resume = campaign.add_parser("resume", help="resume a campaign from its last completed step")
    resume.add_argument("out", metavar="DIR", help="the campaign's folder (its --out)")
    resume.set_defaults(func=_cmd_campaign)

    campaigns = sub.add_parser("faults", help="fault campaigns on the twins").add_subparsers(
        dest="faults_cmd", required=True
    )
    faults_run = campaigns.add_parser(
        "run",
        help="run a campaign on a lab's twins with a schedule of faults injected at points of "
        "it; print what became of them (exit 1 if any did not end as the policy says)",
    )
    faults_run.add_argument(
        "--campaign", metavar="FILE", help="campaign file (default: the bundled campaign)"
    )
    faults_run.add_argument(
        "--lab", help="lab file with twins (default: the campaign's lab, the bundled one)"
    )
    faults_run.add_argument(
        "--schedule",
        metavar="FILE",
        help="YAML list of {device, kind, params, recoverable, after_events, plan} (default: "
        "a furnace1 heater stuck at 65 % (over-temperature alarm, then clear); links "
        "of feeder1, furnace1 lost then back; feeder1's gas lost between prints, then back; "
        "feeder1's gas lost as a print starts; power losses of feeder1, furnace1, stage1; "
        "stage1 jammed)",
    )
    faults_run.add_argument("--out", default="runs/faults", help="folder for the run documents")
    faults_run.set_defaults(func=_cmd_faults_run)

    data = sub.add_parser("data", help="the run store").add_subparsers(
        dest="data_cmd", required=True
    )
    recover = data.add_parser(
        "recover", help="write into the store whatever the run log holds and it does not"
    )
    recover.add_argument(
        "out", nargs="?", default="runs", metavar="OUT", help="output folder (default: runs)"
    )
    recover.set_defaults(func=_cmd_data_recover)
    report = sub.add_parser(
        "report", help="write a campaign's report (HTML, Markdown, PNG, CSV, JSON) from the store"
    )
    report.add_argument("campaign", help="the campaign's id (its campaign file's id)")
    report.add_argument(
        "--store",
        default="runs/campaign",
        metavar="DIR",
        help="the campaign's output folder, whose store/ is read (default runs/campaign)",
    )
    report.add_argument("--out", help="folder of the report (default DIR/report-CAMPAIGN)")
    report.add_argument(
        "--no-recover",
        action="store_true",
        help="read the store as it is (default: first write to it what the run log holds "
        "and it does not, as couponlab data recover)",
    )
    report.set_defaults(func=_cmd_report)

    ipy = sub.add_parser(
        "ipython", help="IPython with the lab's devices, a RunEngine with live feedback, plans"
    )
    ipy.add_argument(
        "labfile", nargs="?", default="sim", help="lab file (YAML), or 'sim' (default)"
    )
    ipy.add_argument("--out", default="runs", help="folder for the run documents and RE.md")
    ipy.set_defaults(func=_cmd_ipython)

    samples_command.add_parser(sub)
    return p


_FAILURE_LOG = "couponlab.cli.failure"
"""Logger of the failure report (to the log file only: the screen gets :func:`_report`)."""


class _LazyFileHandler(logging.FileHandler):
    """A log file (and its folder) created only when the first record arrives."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class _OneLineFormatter(logging.Formatter):
    """``couponlab: <logger>: <message>`` without the traceback (that is in the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"couponlab: {record.levelname.lower()}: {record.getMessage()}"


def _log_path(args: argparse.Namespace) -> Path:
    if args.log:
        return Path(args.log)
    return Path(getattr(args, "out", None) or "runs") / "couponlab.log"


@contextlib.contextmanager
def _logging(path: Path, debug: bool) -> Iterator[None]:
    """Send every log record (INFO and up) to ``path``; warnings of couponlab (one line) or,
    with ``debug``, everything with tracebacks, to stderr. Undone on exit."""
    root = logging.getLogger()
    old_level = root.level
    to_file = _LazyFileHandler(path, encoding="utf-8", delay=True)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_screen = logging.StreamHandler(sys.stderr)
    if debug:
        to_screen.setLevel(logging.DEBUG)
    else:
        to_screen.setLevel(logging.WARNING)
        to_screen.addFilter(lambda r: r.name.startswith("couponlab") and r.name != _FAILURE_LOG)
        to_screen.setFormatter(_OneLineFormatter())
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.addHandler(to_file)
    root.addHandler(to_screen)
    try:
        yield
    finally:
        root.removeHandler(to_screen)
        root.removeHandler(to_file)
        to_file.close()
        root.setLevel(old_level)


def _report(exc: BaseException, code: ExitCode, path: Path, debug: bool) -> None:
    """Log the whole error; print its cause and the lab's state first, clean-up after."""
    logging.getLogger(_FAILURE_LOG).error(
        "command failed (exit code %d): %s", int(code), one_line(exc), exc_info=exc
    )
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if code == ExitCode.INTERRUPTED:
        state = lab_state(exc)
        print(f"couponlab: interrupted; lab: {state or 'unknown'}", file=sys.stderr)
    else:
        print(f"couponlab: {one_line(exc)}", file=sys.stderr)
    for line in cleanup_failures(exc):
        print(f"  clean-up: {line}", file=sys.stderr)
    if isinstance(root_cause(exc), LabFileError | RegistryError):
        return  # the one line names the file and what was refused: nothing more to see
    if code == ExitCode.INTERNAL or not debug:
        print(
            f"  full traceback: {path}" + ("" if debug else " (or run with --debug)"),
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``couponlab`` command; return its exit code (:class:`ExitCode`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:  # what follows goes to the program started (couponlab ipython -- ARGS)
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits 2 here (argparse)
    if passthrough and args.command != "ipython":
        parser.error(f"arguments after -- are for 'couponlab ipython' only: {passthrough}")
    args.passthrough = passthrough
    path = _log_path(args)
    with _logging(path, args.debug):
        try:
            code: int = args.func(args)
        except Exception as exc:
            failed = exit_code(exc)
            _report(exc, failed, path, args.debug)
            return int(failed)
        except KeyboardInterrupt as exc:
            _report(exc, ExitCode.INTERRUPTED, path, args.debug)
            return int(ExitCode.INTERRUPTED)
    return code


if __name__ == "__main__":
    sys.exit(main())
