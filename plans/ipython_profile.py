"""``couponlab ipython [LABFILE]``: an IPython session that feels like a beamline profile.

:func:`build_namespace` opens a :class:`couponlab.session.Session` on the lab file (its
twins started, every device connected) and returns what the IPython namespace holds:

- every device under its lab-file name (``furnace1``, ``stage1`` ...), tab-completable down
  to its signals (``furnace1.clock.sim_time``);
- ``RE``, the session's RunEngine, with bluesky's progress bars on every watched wait
  (:class:`couponlab.progress.ProgressBars`), the live table and figures
  (:class:`couponlab.plans.live.LiveFeedback`, as ``live``) and metadata that survive a
  restart: ``RE.md`` is bluesky's ``PersistentDict`` in ``<out>/metadata`` (``scan_id`` and
  every key you set, such as ``RE.md["operator"]``; the lab's name, lab file and versions
  are the current session's);
- the plans: bluesky's ``bp``, ``bps``, ``bpp`` and couponlab's own plans by name
  (``gradient_oxidation_hold``, ``raster_map``, ``tensile_test`` ...);
- ``session`` (``session.call(...)``, ``session.safe_state()``), ``Q_`` (quantities), ``np``.

Leaving IPython closes the session: every device to its safe state, the twins stopped.
See docs/howto/watch-a-run-live.md.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import PersistentDict

from couponlab.labfile import LabFile
from couponlab.plans.live import LiveFeedback
from couponlab.progress import ProgressBars
from couponlab.session import Session
from couponlab.units import Q_

log = logging.getLogger(__name__)

PLAN_MODULES = (
    "calibrate_feeder",
    "fly_line_scan",
    "gradient_hold",
    "print_graded",
    "raster_map",
    "tensile_test",
)
"""Modules of :mod:`couponlab.plans` whose plans are put in the namespace by name."""

SESSION_KEYS = ("lab", "lab_file", "versions")
"""Metadata the session sets at every start (never taken from an earlier session)."""


def couponlab_plans() -> dict[str, Callable[..., Any]]:
    """Return couponlab's plans (public functions that yield bluesky messages) by name."""
    found: dict[str, Callable[..., Any]] = {}
    for module_name in PLAN_MODULES:
        module = importlib.import_module(f"couponlab.plans.{module_name}")
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isfunction(obj) and "MsgGenerator" in str(
                inspect.signature(obj).return_annotation
            ):
                found[name] = obj
    return found


class LabMetadata(PersistentDict):
    """bluesky's ``PersistentDict`` that can be closed: written out once more and let go,
    so that a later one on the same folder (the next session) is not overwritten by this
    one's finaliser (zict keeps one file per key under a name only its own instance
    knows)."""

    def close(self) -> None:
        """Write every key to disk and stop writing on garbage collection."""
        self.flush()  # type: ignore[no-untyped-call]
        self._finalizer.detach()


def persistent_metadata(session: Session, folder: str | Path) -> LabMetadata:
    """Give ``session.RE`` metadata kept in ``folder`` (bluesky's ``PersistentDict``): what
    an earlier session stored (``scan_id``, the user's keys), with this session's lab, lab
    file and versions. Returns the dict (also ``session.RE.md``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md = LabMetadata(str(folder))  # type: ignore[no-untyped-call]
    current = dict(session.RE.md)
    for key in SESSION_KEYS:
        if key in current:
            md[key] = current[key]
    session.RE.md = cast(dict[Any, Any], md)  # (bluesky types md as a dict)
    return md


def build_namespace(
    lab: str | Path | LabFile = "sim",
    *,
    out_dir: str | Path = "runs",
    live: bool = True,
    progress: bool = True,
    session: Session | None = None,
) -> dict[str, Any]:
    """Open a session on ``lab`` and return the IPython namespace (module docstring).

    Parameters
    ----------
    lab
        A lab file path, a :class:`LabFile`, or ``"sim"`` (the bundled lab, all twins).
    out_dir
        Folder of the run documents; the metadata live in ``out_dir/metadata``.
    live
        Subscribe the live table and figures.
    progress
        Show progress bars on the terminal.
    session
        An open session to use instead of opening one (tests).
    """
    s = session or Session.open(lab, out_dir=out_dir)
    try:
        persistent_metadata(s, Path(out_dir) / "metadata")
        feedback = LiveFeedback(table=live, plots=live)
        if live:
            s.RE.subscribe(feedback)
        if progress:
            s.RE.waiting_hook = cast(Any, ProgressBars())
    except BaseException:
        if session is None:
            s.close()
        raise
    namespace: dict[str, Any] = {
        "session": s,
        "RE": s.RE,
        "live": feedback,
        "bp": bp,
        "bps": bps,
        "bpp": bpp,
        "np": np,
        "Q_": Q_,
    }
    namespace.update(couponlab_plans())
    namespace.update(s.devices)  # a device's name wins over a plan's
    return namespace


def banner(namespace: dict[str, Any]) -> str:
    """Return the lines shown when the session starts."""
    s: Session = namespace["session"]
    devices = ", ".join(s.devices)
    twins = " (twins)" if s.twins is not None else ""
    return (
        f"couponlab: lab {s.lab.name!r}{twins}; devices: {devices}\n"
        f"  RE (progress bars, live table and figures: live.figures, live.save(folder)); "
        f"RE.md persists (scan_id {s.RE.md.get('scan_id', 0)})\n"
        f"  plans: bp, bps, bpp and couponlab's by name; leaving closes the session (safe "
        f"state, twins stopped)\n"
    )


def _gui_available() -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def start(
    lab: str | Path | LabFile = "sim",
    *,
    out_dir: str | Path = "runs",
    ipython_args: Sequence[str] = (),
) -> int:
    """Run IPython with :func:`build_namespace`'s namespace; close the session after it.

    ``ipython_args`` go to IPython (``-c CODE`` runs CODE and leaves, as ``ipython -c``).
    Without a display, figures are drawn off screen (``live.save(folder)`` writes them).
    """
    import IPython
    from traitlets.config import Config

    if not _gui_available():
        import matplotlib

        matplotlib.use("Agg")
    namespace = build_namespace(lab, out_dir=out_dir)
    config = Config()
    config.TerminalInteractiveShell.banner2 = banner(namespace)
    if _gui_available():
        config.InteractiveShellApp.matplotlib = "auto"
    try:
        IPython.start_ipython(argv=list(ipython_args), user_ns=namespace, config=config)
    finally:
        close_namespace(namespace)
    return 0


def close_namespace(namespace: dict[str, Any], *, session: bool = True) -> None:
    """Close the figures and the metadata, then (``session``) the session: every device
    to its safe state, the twins stopped."""
    try:
        namespace["live"].close()
        md = namespace["RE"].md
        if isinstance(md, LabMetadata):
            md.close()
            namespace["RE"].md = dict(md)
    finally:
        if session:
            namespace["session"].close()


__all__ = [
    "PLAN_MODULES",
    "LabMetadata",
    "banner",
    "build_namespace",
    "close_namespace",
    "couponlab_plans",
    "persistent_metadata",
    "start",
]
