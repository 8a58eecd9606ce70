"""The main job: a whole simulated coupon campaign on the twins of a lab, results printed.

1. calibrate the powder feeder (transport delay and lag of each hopper used);
2. print a coupon graded across its width, 0 -> 50 % Cr in Ni, with feed-forward;
3. oxidise it on the furnace carrier in a gradient along its length (setpoints 1100 -> 800
   degC; the coupon sees what the carrier thermocouples report), as a furnace program,
   recording the furnace profile and the carrier's thermocouples;
4. mount it on the stage and map oxide thickness (profiler) and composition (XRF); judge
   the print's feed-forward on the XRF map, with its counting uncertainty;
5. analyse the exposure (:func:`couponlab.plans.oxidation_analysis.analyse_coupons`): per
   composition row the oxidation regime, growth law and activation energy with its
   interval, and the critical Cr content for a protective chromia scale, each beside the
   simulated world's ground truth (marked as simulation truth);
6. pull miniature tensile specimens (SS-J3 class) cut from the exposed coupon, one per
   composition band, laid out inside the coupon without overlap
   (:func:`couponlab.specimens.layout_specimens`).

Every step is a bluesky plan from :mod:`couponlab.plans` on devices built from the lab file;
only the simulation's own controls (virtual-time speed and the ground truth) go through the
twin control channel, ``Session.twins.control`` (the truth as plain data:
``truth("oxidation", ...)``). Every run's documents are in ``out_dir``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from couponlab.data import event_table
from couponlab.errors import InputError
from couponlab.interfaces.frame import TestSettings
from couponlab.labfile import LabFile
from couponlab.plans.coupon_maps import (
    calibration_lines,
    first_device,
    map_measurements,
    scanner_temperatures,
)
from couponlab.session import Session
from couponlab.specimens import SS_J3, CutPlan, bands_from_rows, layout_specimens, outline_mm
from couponlab.units import to_magnitude

COUPON_LENGTH_MM, COUPON_WIDTH_MM = 60.0, 10.0
HOT_C, COLD_C = 1100.0, 800.0
HOLD_H = 50.0
X_POINTS = np.linspace(3.0, 57.0, 10)
"""Profiler positions along the coupon (the temperature axis), mm."""
Y_ROWS = np.arange(1.0, 9.51, 0.5)
"""Composition rows across the coupon, mm (every 2.5 % Cr: several inside the transition)."""
MAP_DWELL_S = 0.2
XRF_ELEMENTS = ("Cr", "Ni", "Fe", "Al")
TENSILE_SETTINGS = TestSettings(crosshead_rate="0.075 mm/min")
"""ASTM E8 method C for the SS-J3 specimen: 0.015/min of its 5 mm reduced section."""
MAX_Z = 4.0
"""The demo fails (exit code 1) if a pure-regime row's Q or the critical Cr content is
further than this many of its standard uncertainties from the simulation truth."""


def _cr_across(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Target: 0 % Cr at y = 0 to 50 % Cr at y = 10 mm, Ni balance, uniform along x."""
    cr = 0.5 * y / COUPON_WIDTH_MM + 0.0 * x
    return {"Cr": cr, "Ni": 1.0 - cr}


def tensile_cut(regimes: Sequence[str]) -> CutPlan:
    """Return the demo's cut plan: one SS-J3 specimen per composition band of the coupon.

    ``regimes`` labels each row of :data:`Y_ROWS` (the analysis' regime); each run of equal
    labels is a band (:func:`couponlab.specimens.bands_from_rows`).

    Raises
    ------
    CutPlanError
        A band has no room on the coupon (nothing is sent).
    """
    bands = bands_from_rows(Y_ROWS.tolist(), list(regimes), f"{COUPON_WIDTH_MM} mm")
    return layout_specimens(f"{COUPON_LENGTH_MM} mm", f"{COUPON_WIDTH_MM} mm", bands)


def run_demo(
    lab: LabFile, out_dir: Path, *, subscribers: Sequence[Callable[[str, Any], Any]] = ()
) -> int:
    """Run the simulated campaign on ``lab`` (every device a twin); print the results.
    ``subscribers`` get every run document too (e.g. :class:`couponlab.plans.live.
    LiveFeedback`).

    Returns the process exit code: 0 when every step ran and the simulation truth of every
    pure-regime row's Q and of the critical Cr content lies within :data:`MAX_Z` standard
    uncertainties of the campaign's estimate, else 1.

    Raises
    ------
    InputError
        The lab is not all twins, or lacks a family the demo needs (nothing started).
    CouponlabError, bluesky.utils.RunEngineInterrupted, KeyboardInterrupt
        A device failed, or Ctrl-C: the run is ended (aborted if it was paused) and every
        device put in its safe state before the error leaves; the lab's state after that
        clean-up rides on the error (:func:`couponlab.failure.lab_state`).
    """
    from couponlab.plans.calibrate_feeder import calibrate_feeder
    from couponlab.plans.campaign import FAMILIES
    from couponlab.plans.coupon_temperature import temperatures_at
    from couponlab.plans.gradient_hold import EXPOSURE_STREAM, gradient_oxidation_hold
    from couponlab.plans.oxidation_analysis import analyse_coupons
    from couponlab.plans.print_graded import print_graded_coupon
    from couponlab.plans.raster_map import raster_map
    from couponlab.plans.tensile_test import tensile_test

    if not all(d.twin for d in lab.devices):
        raise InputError("", "the demo drives twins only: use a lab whose devices are all twins")
    names = {f: first_device(lab, f) for f in FAMILIES}  # the campaign's families
    t_start = time.monotonic()
    campaign_id = time.strftime("demo-%Y%m%d-%H%M%S")
    print(
        f"couponlab demo: lab {lab.name!r}, {len(lab.devices)} twins; run documents in "
        f"{out_dir}/, campaign id {campaign_id}"
    )
    with Session(lab, out_dir=out_dir) as s:
        # every run of the demo carries its campaign's key, as a campaign's runs do
        s.RE.md["campaign_id"] = campaign_id
        for subscriber in subscribers:
            s.RE.subscribe(subscriber)
        dev: dict[str, Any] = {f: s.devices[n] for f, n in names.items()}
        for f in ("gradient_furnace", "powder_feeder", "test_frame"):
            print(f"  {names[f]:<10} {s.call(dev[f].identify)}")
        assert s.twins is not None  # the demo drives twins only
        clock = s.twins.control  # simulation only: virtual-time speed and the ground truth

        # -- 1. calibrate -------------------------------------------------------------
        clock.set_speedup(20.0)  # simulation only: resolve seconds of delay
        feeder, cell = dev["powder_feeder"], dev["deposition_cell"]
        print("\n[1] feeder calibration (step response of hoppers 1 and 2)")
        cal = s.run(calibrate_feeder(feeder, [1, 2])).plan_result
        for line in calibration_lines(cal):
            print("    " + line)

        # -- 2. print -------------------------------------------------------------------
        print(
            f"\n[2] print a {COUPON_LENGTH_MM:g} x {COUPON_WIDTH_MM:g} mm coupon graded "
            "across its width: 0 -> 50 % Cr in Ni, feed-forward"
        )
        rec = s.run(
            print_graded_coupon(
                cell,
                [feeder],
                _cr_across,
                {names["powder_feeder"]: cal},
                length=COUPON_LENGTH_MM,
                width=COUPON_WIDTH_MM,
            )
        ).plan_result
        coupon = rec.coupon_id
        print(f"    coupon {coupon}: printed; its as-built composition is measured by XRF in [4]")

        # -- 3. oxidise -------------------------------------------------------------------
        clock.set_speedup(5000.0)  # simulation only: hours in seconds
        furnace = dev["gradient_furnace"]
        positions = s.call(furnace.read_profile).positions_mm
        offset = float(positions[0] + positions[-1]) / 2 - COUPON_LENGTH_MM / 2
        print(
            f"\n[3] oxidise on the furnace carrier: setpoints {HOT_C:g} -> {COLD_C:g} degC at the "
            f"coupon's ends, {HOLD_H:g} h, with the carrier thermocouples"
        )
        s.run(
            gradient_oxidation_hold(
                furnace,
                f"{HOT_C} degC",
                f"{COLD_C} degC",
                f"{HOLD_H} h",
                "5 h",
                ramp_rate="25 K/min",
                hot_position=offset,
                cold_position=offset + COUPON_LENGTH_MM,
                coupon_id=coupon,
                coupon_offset=offset,
                detectors=[dev["thermocouple_scanner"]],
            )
        )
        hold_run = s.log.paths[-1]
        # the coupon's exposure as the run recorded it (longer than programmed if paused)
        exposure_s = float(event_table(hold_run, EXPOSURE_STREAM)["coupon_exposure_s"][0])
        print(f"    coupon exposure {exposure_s / 3600:.2f} h (programmed {HOLD_H:g} h)")
        t_x, scans = scanner_temperatures(
            event_table(hold_run), names["thermocouple_scanner"], lab
        )
        seen = temperatures_at([0.0, COUPON_LENGTH_MM], t_x, scans, exposure_s)
        ends_c = seen.temperature_k - 273.15
        print(
            f"    the coupon saw {ends_c[0]:.0f} +/- {seen.sigma_k[0]:.0f} -> "
            f"{ends_c[1]:.0f} +/- {seen.sigma_k[1]:.0f} degC from end to end (carrier "
            f"thermocouples, mean of {scans.shape[0]} scans over the hold, type-K tolerance)"
        )

        # -- 4. map -------------------------------------------------------------------------
        clock.set_speedup(50.0)
        stage, profiler, xrf = dev["xy_stage"], dev["oxide_profiler"], dev["xrf_probe"]
        s.call(lambda: stage.load_coupon(coupon, COUPON_LENGTH_MM, COUPON_WIDTH_MM))
        print(f"\n[4] map oxide thickness and composition: {X_POINTS.size} x {Y_ROWS.size} points")
        s.run(
            raster_map(
                [profiler, xrf],
                stage,
                (X_POINTS[0], X_POINTS[-1], X_POINTS.size),
                (Y_ROWS[0], Y_ROWS[-1], Y_ROWS.size),
                dwell=f"{MAP_DWELL_S} s",
                snake=False,
            )
        )
        table = event_table(s.log.paths[-1])
        measured = map_measurements(
            table,
            profiler=names["oxide_profiler"],
            xrf=names["xrf_probe"],
            x_mm=X_POINTS,
            rows=Y_ROWS.size,
            dwell_s=MAP_DWELL_S,
            tc_positions_mm=t_x,
            tc_scans_c=scans,
            hold_s=exposure_s,
        )
        for line in _as_built_lines(rec.target, measured.cr, measured.cr_sigma):
            print("    " + line)

        # -- 5. analyse -----------------------------------------------------------------------
        [result] = analyse_coupons([measured])
        # simulation only: the ground truth, plain data from the twins
        truth = clock.truth(
            "oxidation", coupon_id=coupon, x_mm=X_POINTS.tolist(), y_mm=Y_ROWS.tolist()
        )
        recovered = True
        for line, ok in _analysis_lines(result, truth):
            print(line)
            recovered &= ok
        if not recovered:
            print(
                f"    FAILED: a truth lies more than {MAX_Z:g} standard uncertainties from the "
                "campaign's estimate"
            )

        # -- 6. tensile ---------------------------------------------------------------------
        s.call(stage.unload_coupon)
        clock.set_speedup(200.0)
        cut = tensile_cut([row.regime for row in result.rows])  # refused before a byte is sent
        along, across = outline_mm(SS_J3)
        thickness_mm = to_magnitude(SS_J3.thickness, "mm")
        print(
            f"\n[6] tensile tests: {len(cut.specimens)} {SS_J3.designation} specimens, one per "
            f"composition band\n    cut from the exposed coupon, gauge along x: {along:g} x "
            f"{across:g} mm outlines inside the {COUPON_LENGTH_MM:g} x {COUPON_WIDTH_MM:g} mm "
            f"coupon, {cut.kerf_mm:g} mm kerf, none overlapping; ASTM E8 method C at "
            f"{TENSILE_SETTINGS.crosshead_rate}; stress on the nominal section (the metal the "
            "oxide consumed counts against it)"
        )
        frame = dev["test_frame"]
        sites = temperatures_at([p.x_mm for p in cut.specimens], t_x, scans, exposure_s)
        row_cr = np.nanmean(measured.cr, axis=1)
        for placed, t_k in zip(cut.specimens, sites.temperature_k, strict=True):
            sid = placed.specimen_id(coupon)
            props = s.run(
                tensile_test(
                    frame,
                    coupon,
                    f"{placed.x_mm} mm",
                    across=f"{placed.y_mm} mm",
                    coupon_width=f"{COUPON_WIDTH_MM} mm",
                    coupon_length=f"{COUPON_LENGTH_MM} mm",
                    geometry=SS_J3,
                    settings=TENSILE_SETTINGS,
                    md={"specimen_id": sid, "band": placed.band, "cut_plan": cut.describe()},
                )
            ).plan_result
            s.call(frame.dismount)  # the broken specimen out of the grips
            cr = float(np.interp(placed.y_mm, Y_ROWS, row_cr))
            # simulation only: the metal the oxide consumed under the specimen's oxidised face
            (lost_um,) = clock.truth(
                "recession", coupon_id=coupon, x_mm=[placed.x_mm], y_mm=[placed.y_mm]
            )["recession_um"]
            print(
                f"    {sid} ({placed.band} band) at x {placed.x_mm:g}, y {placed.y_mm:g} mm: Cr "
                f"{cr:.2f} by XRF, held at {t_k - 273.15:.0f} degC; simulation truth: oxidation "
                f"consumed {lost_um:.1f} um of its {thickness_mm:g} mm\n"
                f"        E {props.modulus:.0f} GPa, YS(0.2%) {props.yield_strength:.0f} MPa, "
                f"UTS {props.uts:.0f} MPa, uniform el. {props.uniform_elongation:.1f} %, "
                f"total el. {props.total_elongation:.1f} %"
            )
    print(
        f"\ndone in {time.monotonic() - t_start:.0f} s wall time; {len(s.log.paths)} runs "
        f"in {out_dir}/"
    )
    return 0 if recovered else 1


def _as_built_lines(target: Any, cr: Any, cr_sigma: Any) -> list[str]:
    """Judge the print on the XRF map: RMS of (XRF - target) against counting noise."""
    from scipy.interpolate import RegularGridInterpolator

    grid = RegularGridInterpolator(
        (np.asarray(target.y_mm), np.asarray(target.x_mm)), np.asarray(target.fractions["Cr"])
    )
    yy, xx = np.meshgrid(Y_ROWS, X_POINTS, indexing="ij")
    diff = cr - grid(np.stack([yy.ravel(), xx.ravel()], axis=1)).reshape(cr.shape)
    ok = np.isfinite(diff)
    rms = float(np.sqrt(np.mean(diff[ok] ** 2)))
    counting = float(np.sqrt(np.mean(cr_sigma[ok] ** 2)))
    excess = rms**2 - counting**2
    n = int(ok.sum())
    # the variance of a mean of n squared normal errors is 2 sigma^4 / n
    se = float(np.sqrt(2.0 / n)) * rms**2
    print_err = (
        f"{np.sqrt(excess):.4f}"
        if excess > se
        else f"below {np.sqrt(max(excess, 0) + 2 * se):.4f}"
    )
    return [
        f"as built (XRF, {n} points) vs target: RMS Cr error {rms:.4f}, of which XRF counting "
        f"{counting:.4f}; the print's own error {print_err}"
    ]


def _analysis_lines(result: Any, truth: dict[str, Any]) -> list[tuple[str, bool]]:
    """Return the printout of the analysis with the simulation truth, and whether each
    truth lies within :data:`MAX_Z` standard uncertainties."""
    lines: list[tuple[str, bool]] = [
        (
            "\n[5] oxidation per composition row (one exposure; 68 % intervals; "
            "truth = simulation truth)",
            True,
        ),
        (
            f"    {'y mm':>5} {'Cr (XRF)':>13} {'regime':>10} {'law':>20} "
            f"{'Q kJ/mol (68 %)':>19}  | {'truth: regime':>13} {'Q':>6}",
            True,
        ),
    ]
    for y, row, t in zip(Y_ROWS, result.rows, truth["rows"], strict=True):
        lo, hi = row.q_interval(0.68)
        pure = row.regime in ("NiO", "chromia") and row.regime == t["regime"]
        z = (row.activation_energy_kj_per_mol - t["activation_energy_kj_per_mol"]) / (
            row.q_sigma_kj_per_mol
        )
        ok = not pure or abs(z) <= MAX_Z
        flags = []
        if row.out_of_range:
            flags.append(f"{row.out_of_range} out of range")
        if row.off_model % 1000:
            flags.append(f"{row.off_model % 1000} spalled")
        if row.off_model >= 1000:
            flags.append("off model")
        q = f"{row.activation_energy_kj_per_mol:5.0f} [{lo:4.0f}, {hi:4.0f}]"
        if row.regime == "transition":
            q = f"({row.activation_energy_kj_per_mol:4.0f} apparent)"
        lines.append(
            (
                f"    {y:5.1f} {row.cr:6.3f}+/-{row.cr_sigma:.3f} {row.regime:>10} "
                f"{row.law:>20} {q:>19}  | {t['regime']:>13} "
                f"{t['activation_energy_kj_per_mol']:6.1f}"
                + (f"  ({', '.join(flags)})" if flags else ""),
                ok,
            )
        )
    c = result.critical
    true_c = truth["critical_cr_fraction"]
    if c.located:
        lo, hi = c.interval(0.68)
        lo95, hi95 = c.interval(0.95)
        ok = abs(c.fraction - true_c) <= MAX_Z * c.sigma
        lines.append(
            (
                f"    critical Cr content for a protective chromia scale: {c.fraction:.4f} "
                f"(68 %: {lo:.4f}-{hi:.4f}; 95 %: {lo95:.4f}-{hi95:.4f}); "
                f"simulation truth {true_c:.4f}",
                ok,
            )
        )
    else:
        lines.append(
            ("    critical Cr content: not located (the rows do not span both regimes)", False)
        )
    return lines
