"""The main job: a whole simulated coupon campaign on the twins of a lab, results printed.

1. calibrate the powder feeder (transport delay and lag of each hopper used);
2. print a coupon graded across its width, 0 -> 50 % Cr in Ni, with feed-forward;
3. oxidise it on the furnace carrier in a gradient along its length (1100 -> 800 degC), as a
   furnace program, recording the furnace profile and the carrier's thermocouples;
4. mount it on the stage and map oxide thickness (profiler) and composition (XRF);
5. fit the oxidation activation energy of every composition row from one exposure, and
   compare with the simulated world's ground truth;
6. pull tensile specimens cut from the coupon at two compositions.

Every step is a bluesky plan from :mod:`couponlab.plans` on devices built from the lab file;
only the simulation's own controls (virtual-time speed and the ground truth) go through the
twin control channel, ``Session.twins.control``. Every run's documents are in ``out_dir``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from couponlab.data import event_table
from couponlab.errors import InputError
from couponlab.labfile import LabFile
from couponlab.session import Session

COUPON_LENGTH_MM, COUPON_WIDTH_MM = 60.0, 10.0
HOT_C, COLD_C = 1100.0, 800.0
HOLD_H = 50.0
X_POINTS = np.linspace(3.0, 57.0, 10)
"""Profiler positions along the coupon (the temperature axis), mm."""
Y_ROWS = np.array([1.0, 3.0, 5.0, 7.0, 9.0])
"""Composition rows across the coupon, mm."""
TENSILE_ACROSS_MM = (3.0, 7.0)
"""Where the tensile specimens are cut across the coupon (the 6 mm wide gauge spans y +/- 3)."""
MAX_Q_ERROR_KJ = 5.0
"""The demo fails (exit code 1) if a fitted Q is further than this from the truth, kJ/mol
(neighbouring rows differ by about 14 kJ/mol)."""


def _cr_across(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Target: 0 % Cr at y = 0 to 50 % Cr at y = 10 mm, Ni balance, uniform along x."""
    cr = 0.5 * y / COUPON_WIDTH_MM + 0.0 * x
    return {"Cr": cr, "Ni": 1.0 - cr}


def _first(lab: LabFile, family: str) -> str:
    names = [d.name for d in lab.by_family(family)]
    if not names:
        raise InputError("", f"lab {lab.name!r} has no {family}: the demo needs one")
    return names[0]


def run_demo(lab: LabFile, out_dir: Path) -> int:
    """Run the simulated campaign on ``lab`` (every device a twin); print the results.

    Returns the process exit code: 0 when every step ran and every row's fitted activation
    energy is within :data:`MAX_Q_ERROR_KJ` of the simulated world's truth, else 1.

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
    from couponlab.plans.gradient_hold import EXPOSURE_STREAM, gradient_oxidation_hold
    from couponlab.plans.oxidation_analysis import fit_per_row
    from couponlab.plans.print_graded import map_error, print_graded_coupon
    from couponlab.plans.raster_map import raster_map
    from couponlab.plans.tensile_test import tensile_test

    if not all(d.twin for d in lab.devices):
        raise InputError("", "the demo drives twins only: use a lab whose devices are all twins")
    names = {
        f: _first(lab, f)
        for f in (
            "gradient_furnace",
            "powder_feeder",
            "deposition_cell",
            "xy_stage",
            "oxide_profiler",
            "xrf_probe",
            "thermocouple_scanner",
            "test_frame",
        )
    }
    t_start = time.monotonic()
    print(
        f"couponlab demo: lab {lab.name!r}, {len(lab.devices)} twins; run documents in {out_dir}/"
    )
    with Session(lab, out_dir=out_dir) as s:
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
        for line in _calibration_lines(cal):
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
        as_built_err = map_error(rec.target, rec.as_built) if rec.as_built else float("nan")
        print(f"    coupon {coupon}: as-built vs target, RMS Cr error {as_built_err:.4f}")

        # -- 3. oxidise -------------------------------------------------------------------
        clock.set_speedup(5000.0)  # simulation only: hours in seconds
        furnace = dev["gradient_furnace"]
        positions = s.call(furnace.read_profile).positions_mm
        offset = float(positions[0] + positions[-1]) / 2 - COUPON_LENGTH_MM / 2
        print(
            f"\n[3] oxidise on the furnace carrier: {HOT_C:g} -> {COLD_C:g} degC along the "
            f"coupon, {HOLD_H:g} h, with the carrier thermocouples"
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
        t_x, t_c = _coupon_temperatures(hold_run, names["thermocouple_scanner"], lab)
        print("    carrier thermocouples at the end of the hold:")
        print(
            "    "
            + "  ".join(f"{x:4.0f}mm {t:6.1f}C" for x, t in list(zip(t_x, t_c, strict=True))[::2])
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
                dwell="0.2 s",
                snake=False,
            )
        )
        table = event_table(s.log.paths[-1])
        thickness_m = _grid(table, f"{names['oxide_profiler']}-thickness") * 1e-9
        cr = _grid(table, f"{names['xrf_probe']}-fraction_cr")

        # -- 5. fit ---------------------------------------------------------------------------
        temps_k = np.interp(X_POINTS, t_x, t_c) + 273.15
        fits = fit_per_row(thickness_m, temps_k, exposure_s)
        truth = _true_q(clock, coupon)  # simulation only: ground truth
        print("\n[5] activation energy per composition row (one exposure, thickness vs 1/T)")
        print(
            f"    {'y mm':>5} {'Cr (XRF)':>9} {'Q fit kJ/mol':>13} {'+/-':>5} "
            f"{'Q true':>7} {'points':>6}"
        )
        worst = 0.0
        for y, row_cr, fit, q in zip(Y_ROWS, cr, fits, truth(Y_ROWS), strict=True):
            worst = max(worst, abs(fit.activation_energy_kj_per_mol - q))
            print(
                f"    {y:5.1f} {np.nanmean(row_cr):9.3f} "
                f"{fit.activation_energy_kj_per_mol:13.1f} {fit.stderr_kj_per_mol:5.1f} "
                f"{q:7.1f} {fit.n_points:6d}"
            )
        print(f"    largest |fit - truth|: {worst:.1f} kJ/mol")
        recovered = worst <= MAX_Q_ERROR_KJ
        if not recovered:
            print(
                f"    FAILED: the campaign did not recover the world's activation energies "
                f"within {MAX_Q_ERROR_KJ:g} kJ/mol"
            )

        # -- 6. tensile ---------------------------------------------------------------------
        s.call(stage.unload_coupon)
        clock.set_speedup(200.0)
        print(
            "\n[6] tensile tests (ASTM E8M sub-size, gauge along x at x = 30 mm) of specimens "
            "cut at two compositions"
        )
        frame = dev["test_frame"]
        for across in TENSILE_ACROSS_MM:
            result = s.run(tensile_test(frame, coupon, "30 mm", across=f"{across} mm")).plan_result
            s.call(frame.dismount)  # the broken specimen out of the grips
            row_cr = float(np.interp(across, Y_ROWS, np.nanmean(cr, axis=1)))
            print(
                f"    y = {across:g} mm (Cr {row_cr:.2f}): E {result.modulus:.0f} GPa, "
                f"YS(0.2%) {result.yield_strength:.0f} MPa, UTS {result.uts:.0f} MPa, "
                f"uniform el. {result.uniform_elongation:.1f} %, "
                f"total el. {result.total_elongation:.1f} %"
            )
    print(
        f"\ndone in {time.monotonic() - t_start:.0f} s wall time; {len(s.log.paths)} runs "
        f"in {out_dir}/"
    )
    return 0 if recovered else 1


def _calibration_lines(cal: Any) -> list[str]:
    return [
        f"hopper {h.hopper} ({h.powder}): transport delay {h.delay_s:.2f} s, "
        f"time constant {h.tau_s:.2f} s"
        for h in cal.hoppers.values()
    ]


def _coupon_temperatures(run: Path, scanner: str, lab: LabFile) -> tuple[Any, Any]:
    """Return (positions mm, temperatures degC) of the carrier thermocouples, last event."""
    table = event_table(run)
    key = next(k for k in table if k.startswith(f"{scanner}-") and "temp" in k)
    positions = np.asarray(lab.device(scanner).settings["positions_mm"], float)
    return positions, np.asarray(table[key][-1], float)


def _grid(table: dict[str, list[Any]], key: str) -> Any:
    """Return a raster column as a (rows, columns) array (rows: y, columns: x)."""
    values = np.asarray(table[key], float)
    return values.reshape(Y_ROWS.size, X_POINTS.size)


def _true_q(clock: Any, coupon_id: str) -> Any:
    """Simulation ground truth: Q (kJ/mol) of the as-built composition at rows y (mm), the
    mean over the profiler's points along the row (from the twin control channel)."""

    def at(y: Any) -> Any:
        return np.asarray(
            [
                np.mean(
                    clock.truth(
                        "activation_energy",
                        coupon_id=coupon_id,
                        x_mm=X_POINTS,
                        y_mm=np.full_like(X_POINTS, yy),
                    )
                )
                for yy in y
            ]
        )

    return at
