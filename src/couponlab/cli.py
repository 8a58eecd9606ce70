"""The ``couponlab`` command.

``couponlab twin serve LABFILE``  start the twins of a lab in one process (one world, one
                                  port per instrument, 127.0.0.1); Ctrl-C / SIGTERM stops it
``couponlab check LABFILE``       connect to every device; print identity, state, readbacks
``couponlab demo``                run the main job: a simulated campaign on the twins
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from couponlab.errors import CouponlabError
from couponlab.labfile import LabFile, load_lab


def sample_lab_path() -> Path:
    """Return the path of the bundled simulated lab file (every device a twin)."""
    return Path(str(resources.files("couponlab") / "labs" / "sim_lab.yaml"))


def _lab_arg(value: str) -> LabFile:
    return load_lab(sample_lab_path() if value == "sim" else value)


# -- twin serve ----------------------------------------------------------------------------
def _cmd_twin_serve(args: argparse.Namespace) -> int:
    from couponlab.twins import serve_twins

    lab = _lab_arg(args.labfile)
    n = sum(d.twin for d in lab.devices)
    if n == 0:
        print(f"lab {lab.name!r} has no device with twin: true; nothing to serve", file=sys.stderr)
        return 2

    def ready(resolved: LabFile) -> None:
        for d in resolved.devices:
            if d.twin:
                print(f"{d.name:<16} {d.family:<22} {d.address}", flush=True)
        where = f"; resolved lab file: {args.resolved}" if args.resolved else ""
        print(f"serving {n} twin(s) of lab {lab.name!r}{where}. Ctrl-C to stop.", flush=True)

    asyncio.run(serve_twins(lab, args.resolved, on_ready=ready))
    print("twins stopped", flush=True)
    return 0


# -- check ---------------------------------------------------------------------------------
def _format_value(value: Any, units: str) -> str:
    u = f" {units}" if units else ""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return "[]"
        if value.dtype.kind == "f":
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
    return asyncio.run(_check(_lab_arg(args.labfile), args.timeout))


# -- demo ----------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from couponlab.plans.demo import run_demo

    code: int = run_demo(_lab_arg(args.lab), out_dir=Path(args.out))
    return code


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``couponlab`` command."""
    p = argparse.ArgumentParser(prog="couponlab", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    twin = sub.add_parser("twin", help="digital twins").add_subparsers(
        dest="twin_cmd", required=True
    )
    serve = twin.add_parser("serve", help="serve the twins of a lab file until Ctrl-C")
    serve.add_argument("labfile", help="lab file (YAML), or 'sim' for the bundled lab")
    serve.add_argument(
        "--resolved", metavar="PATH", help="write the lab file with the real (resolved) ports here"
    )
    serve.set_defaults(func=_cmd_twin_serve)

    check = sub.add_parser("check", help="connect to every device and print its state")
    check.add_argument("labfile", help="lab file (YAML), or 'sim' for the bundled lab")
    check.add_argument("--timeout", type=float, default=5.0, help="connect timeout, s")
    check.set_defaults(func=_cmd_check)

    demo = sub.add_parser("demo", help="run a simulated campaign on the twins")
    demo.add_argument("--lab", default="sim", help="lab file with twins (default: bundled)")
    demo.add_argument("--out", default="runs", help="folder for the run documents")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``couponlab`` command; return its exit code."""
    args = build_parser().parse_args(argv)
    # asyncua warns about its security defaults on every connection; keep errors only
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    try:
        code: int = args.func(args)
    except CouponlabError as exc:
        print(f"couponlab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
