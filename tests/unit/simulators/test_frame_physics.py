"""The frame twin's physics without a server: specimen model, crosshead, buffer, limits.

The world is paused and stepped with ``advance``, so every result is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from couponlab.simulators.frame.material import MechanicsModel, Scatter, SpecimenCurve
from couponlab.simulators.frame.model import Fault, FrameConfig, FrameError, FrameModel, Mode
from couponlab.simulators.world import Coupon, World

S316 = {"Fe": 0.70, "Cr": 0.18, "Ni": 0.12}
IN625 = {"Ni": 0.68, "Cr": 0.22, "Fe": 0.05, "Al": 0.05}


def _frame(**cfg: object) -> tuple[World, FrameModel]:
    world = World()
    world.pause()
    config = FrameConfig.model_validate(cfg)
    return world, FrameModel(world, config)


def _all(model: FrameModel) -> np.ndarray:
    rows, start = [], 0
    while start < model.produced:
        block = model.fetch(start, 10**6)
        rows.append(block)
        start += len(block)
    return np.concatenate(rows) if rows else np.zeros((0, 4))


# -- specimen model -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("comp", "ys", "uts", "elong"),
    [
        (S316, (450, 560), (580, 700), (0.30, 0.55)),
        (IN625, (400, 550), (700, 850), (0.30, 0.45)),
    ],
)
def test_typical_alloys_land_in_domain_ranges(
    comp: dict[str, float],
    ys: tuple[float, float],
    uts: tuple[float, float],
    elong: tuple[float, float],
) -> None:
    truth = SpecimenCurve(MechanicsModel().nominal(comp)).truth
    assert ys[0] <= truth.yield_strength_mpa <= ys[1]
    assert uts[0] <= truth.uts_mpa <= uts[1]
    assert elong[0] <= truth.elongation_after_fracture <= elong[1]
    assert 180e3 <= truth.modulus_mpa <= 215e3


def test_solid_solution_term_peaks_for_mixtures() -> None:
    model = MechanicsModel()
    fe, ni, mix = ({"Fe": 1.0}, {"Ni": 1.0}, {"Fe": 0.5, "Ni": 0.5})
    rom = 0.5 * model.nominal(fe).yield_mpa + 0.5 * model.nominal(ni).yield_mpa
    assert model.nominal(mix).yield_mpa == pytest.approx(rom + 0.25 * 350.0)


def test_scatter_is_seeded_and_composition_changes_the_curve() -> None:
    model = MechanicsModel()
    a = model.specimen(S316, np.random.default_rng(3))
    b = model.specimen(S316, np.random.default_rng(3))
    c = model.specimen(S316, np.random.default_rng(4))
    d = model.specimen(IN625, np.random.default_rng(3))
    assert a == b
    assert a != c
    assert SpecimenCurve(d).truth.uts_mpa > SpecimenCurve(a).truth.uts_mpa + 50


def test_unknown_element_and_bad_sum_refused() -> None:
    with pytest.raises(KeyError, match="Mo"):
        MechanicsModel().nominal({"Fe": 0.9, "Mo": 0.1})
    with pytest.raises(ValueError, match="sum to 1"):
        MechanicsModel().nominal({"Fe": 0.5})


# -- frame ----------------------------------------------------------------------------------
def test_preload_stops_at_the_force_and_holds() -> None:
    world, m = _frame(force_noise_n=0.0)
    m.set_crosshead_rate(2.0)
    m.mount("generic:316L", 10.0)
    m.preload(300.0)
    world.advance(30.0)
    assert m.mode is Mode.IDLE
    assert 300.0 <= m.last[1] < 320.0
    pos = m.position
    world.advance(10.0)
    assert m.position == pos


def test_compliance_makes_crosshead_travel_exceed_specimen_extension() -> None:
    world, m = _frame(force_noise_n=0.0, position_noise_mm=0.0, strain_noise=0.0)
    m.mount("generic:316L", 10.0)
    m.preload(3000.0)
    world.advance(60.0)
    force, pos, strain = m.last[1], m.last[2], m.last[3]
    assert pos == pytest.approx(
        force * m.cfg.compliance_mm_per_n + strain * m.reduced_length, rel=1e-3
    )
    assert pos > 1.5 * strain * m.reduced_length  # the frame is about as stiff as the specimen


def test_test_runs_to_break_with_every_sample_buffered() -> None:
    world, m = _frame()
    m.set_sample_rate(1000.0)
    m.set_crosshead_rate(10.0)
    m.mount("generic:316L", 10.0)
    m.start_test()
    world.advance(600.0)
    assert m.end_reason == "BREAK"
    assert not m.acquiring and m.mode is Mode.IDLE
    assert m.specimen is not None and m.specimen.fractured
    data = _all(m)
    assert len(data) == m.produced
    assert np.allclose(np.diff(data[:, 0]), 1e-3)
    assert data[-1, 1] < 0.4 * data[:, 1].max()
    truth = m.specimen.curve.truth
    assert data[:, 1].max() / m.area_mm2 == pytest.approx(truth.uts_mpa, rel=0.005)
    world.advance(60.0)
    assert m.produced == len(data)  # acquisition ended at the break


def test_overforce_latches_a_fault_and_refuses_motion_until_reset() -> None:
    world, m = _frame()
    m.set_force_limit(2000.0)
    m.mount("generic:316L", 10.0)
    m.start_test()
    world.advance(120.0)
    assert m.fault is Fault.OVERFORCE and m.end_reason == "FAULT"
    assert m.state_name() == "FAULT"
    # stopped at the control step that exceeded the limit, and held there
    assert m.buffer[: m.produced, 1].max() == pytest.approx(2000.0, abs=15.0)
    assert m.last[1] == pytest.approx(2000.0, abs=15.0)
    with pytest.raises(FrameError, match="fault"):
        m.start_test()
    m.set_force_limit(1500.0)
    with pytest.raises(FrameError, match="still above"):
        m.reset_fault()
    m.set_force_limit(2000.0)
    m.unload()
    world.advance(60.0)
    assert m.last[1] <= m.cfg.unload_threshold_n
    m.reset_fault()
    assert m.state_name() == "IDLE"


def test_travel_limit_stops_the_crosshead() -> None:
    world, m = _frame()
    m.set_travel(-5.0, 2.0)
    m.set_crosshead_rate(60.0)
    m.start_test()  # no specimen: just the crosshead
    world.advance(10.0)
    assert m.fault is Fault.TRAVEL
    assert m.position == pytest.approx(2.0, abs=1e-9)


def test_grip_slip_is_detected() -> None:
    world, m = _frame()
    m.set_crosshead_rate(2.0)
    m.mount("generic:316L", 10.0)
    m.start_test()
    world.advance(5.0)
    assert m.slips == 0
    m.inject_slip(0.05)
    world.advance(1.0)
    assert m.slips == 1


@pytest.mark.parametrize("noise_n", [2.0, 10.0])
def test_force_noise_alone_is_never_a_slip(noise_n: float) -> None:
    # A slow test lingers in the few-hundred-newton range, where 3 % of the force is only a
    # few noise deviations of the step-to-step difference: noise must not count as a slip.
    world, m = _frame(force_noise_n=noise_n)
    m.set_crosshead_rate(0.5)
    m.mount("generic:316L", 10.0)
    m.start_test()
    world.advance(120.0)  # through the low-force range, into plastic flow
    assert m.last[1] > 3000.0
    assert m.slips == 0
    m.inject_slip(0.05)
    world.advance(1.0)
    assert m.slips == 1


def test_a_slip_that_drops_the_force_into_a_break_is_a_break_not_a_slip() -> None:
    world, m = _frame(force_noise_n=0.0)
    m.set_crosshead_rate(5.0)
    m.mount("generic:316L", 10.0)
    m.start_test()
    while m.last[1] > 0.9 * m.peak_force or m.peak_force < 1000.0:  # into the neck
        world.advance(1.0)
    spec = m.specimen
    assert spec is not None and m.mode is Mode.TEST
    e_a = spec.curve.params.modulus_mpa * spec.area_mm2
    stiffness = e_a / (e_a * m.cfg.compliance_mm_per_n + spec.reduced_length_mm)  # N/mm
    # Land the force at 38 % of the peak: below the break line (40 % of the peak) though
    # above 40 % of the force just before, so only the break rule tells the two apart.
    m.inject_slip((m.last[1] - 0.38 * m.peak_force) / stiffness)
    world.advance(1.0)
    assert m.end_reason == "BREAK"
    assert m.slips == 0


def test_overwritten_samples_are_reported_not_returned() -> None:
    world, m = _frame(buffer_samples=2048)
    m.set_sample_rate(1000.0)
    m.start_test()
    world.advance(5.0)
    assert m.produced > 4000
    with pytest.raises(FrameError, match="overwritten"):
        m.fetch(0, 10)
    assert len(m.fetch(m.produced - 100, 1000)) == 100


def test_strain_control_follows_the_strain_rate() -> None:
    world, m = _frame(strain_noise=0.0)
    m.set_control("STR")
    m.set_strain_rate(0.6)  # 1 % per second
    m.set_sample_rate(100.0)
    m.mount("generic:316L", 10.0)
    m.start_test()
    world.advance(10.0)
    data = _all(m)
    rate = np.polyfit(data[:, 0], data[:, 3], 1)[0]
    assert rate == pytest.approx(0.01, rel=1e-3)


def test_specimen_material_comes_from_the_coupon_in_the_world() -> None:
    world, m = _frame()
    coupon = world.add_coupon(Coupon("g1", length_mm=60.0))
    x = coupon.x_mm / 60.0
    coupon.set_composition({"Fe": 0.70 - 0.60 * x, "Cr": 0.18 + 0.04 * x, "Ni": 0.12 + 0.56 * x})
    m.set_geometry(5.0, 1.2, 0.5, 5.0)  # SS-J3: a 5 mm reduced section fits at x = 10 and 50
    m.mount("g1", 10.0)
    assert m.specimen is not None and m.specimen.from_coupon
    low = m.specimen.composition["Ni"]
    m.remove()
    m.mount("g1", 50.0)
    assert m.specimen.composition["Ni"] > low + 0.3
    m.remove()
    with pytest.raises(FrameError, match="outside coupon"):
        m.mount("g1", 80.0)


def _across_graded(world: World) -> Coupon:
    """A 60 x 10 mm coupon graded across y only: 316L-like at y=0 to IN625-like at y=10."""
    coupon = world.add_coupon(Coupon("y1", length_mm=60.0, width_mm=10.0))
    t = np.broadcast_to((coupon.y_mm / 10.0)[:, None], coupon.shape)
    coupon.set_composition({e: S316.get(e, 0.0) * (1 - t) + IN625[e] * t for e in IN625})
    return coupon


def _ni_at(m: FrameModel, x: float, y: float | None) -> float:
    m.mount("y1", x, y)
    assert m.specimen is not None and m.specimen.from_coupon
    ni = m.specimen.composition["Ni"]
    m.remove()
    return ni


def test_specimen_across_the_width_averages_its_own_band() -> None:
    world, m = _frame()
    _across_graded(world)
    # Ni = 0.12 + 0.56 * t, t = y / 10; a 6 mm wide specimen spans y +/- 3 mm.
    assert _ni_at(m, 30.0, 3.0) == pytest.approx(0.12 + 0.56 * 0.3, abs=1e-6)  # y 0..6
    assert _ni_at(m, 30.0, 7.0) == pytest.approx(0.12 + 0.56 * 0.7, abs=1e-6)  # y 4..10
    centre = _ni_at(m, 30.0, None)  # the old form: the centre line
    assert centre == pytest.approx(0.12 + 0.56 * 0.5, abs=1e-6)
    assert centre == _ni_at(m, 30.0, 5.0)
    m.set_geometry(25.0, 2.0, 2.0, 32.0)  # a 2 mm wide specimen spans y 0..2 at y=1
    assert _ni_at(m, 30.0, 1.0) == pytest.approx(0.12 + 0.56 * 0.1, abs=1e-6)
    m.mount("y1", 30.0, 8.0)
    assert m.specimen is not None and (m.specimen.x_mm, m.specimen.y_mm) == (30.0, 8.0)


@pytest.mark.parametrize(("x", "y"), [(30.0, 2.0), (30.0, 8.0), (30.0, 10.0), (10.0, 5.0)])
def test_a_reduced_section_partly_off_the_coupon_is_refused(x: float, y: float) -> None:
    """A 32 x 6 mm reduced section must lie on the 60 x 10 mm coupon: x in 16..44, y in 3..7
    (decision 0066: no such specimen can be cut, so the twin does not test a clipped one)."""
    world, m = _frame()
    _across_graded(world)
    with pytest.raises(FrameError, match="lies partly off coupon 'y1'") as info:
        m.mount("y1", x, y)
    assert info.value.code == -222 and m.specimen is None


def test_more_strengthening_element_across_y_gives_a_stronger_specimen() -> None:
    world = World()
    world.pause()
    none = Scatter(modulus=0.0, yield_stress=0.0, hardening=0.0, ductility=0.0)
    m = FrameModel(world, FrameConfig(), MechanicsModel(scatter=none))
    _across_graded(world)
    uts = {}
    m.set_geometry(25.0, 2.0, 2.0, 32.0)  # 2 mm wide: bands around y = 2, 5, 8 fit
    for y in (2.0, 5.0, 8.0):
        m.mount("y1", 30.0, y)
        assert m.specimen is not None
        uts[y] = m.specimen.curve.truth.uts_mpa
        m.remove()
    # nominal UTS: about 668 MPa (Ni 0.26), 704 (Ni 0.40), 729 (Ni 0.54)
    assert uts[5.0] > uts[2.0] + 20.0
    assert uts[8.0] > uts[5.0] + 15.0
    assert uts[8.0] > uts[2.0] + 45.0


@pytest.mark.parametrize("y", [10.5, -0.1, float("nan"), float("inf")])
def test_specimen_off_the_coupon_across_is_refused(y: float) -> None:
    world, m = _frame()
    _across_graded(world)
    with pytest.raises(FrameError, match="Data out of range; y=") as info:
        m.mount("y1", 30.0, y)
    assert info.value.code == -222 and m.specimen is None


def test_generic_specimen_takes_any_y_at_or_above_zero() -> None:
    _world, m = _frame()
    m.mount("generic:316L", 10.0, 42.0)
    assert m.specimen is not None and m.specimen.y_mm == 42.0 and not m.specimen.from_coupon
    m.remove()
    m.mount("generic:316L", 10.0)
    assert m.specimen is not None and m.specimen.y_mm is None
    m.remove()
    with pytest.raises(FrameError, match="y=-1"):
        m.mount("generic:316L", 10.0, -1.0)


def test_settings_refused_while_a_test_runs() -> None:
    _world, m = _frame()
    m.start_test()
    with pytest.raises(FrameError, match="during a test"):
        m.set_sample_rate(10.0)
    with pytest.raises(FrameError, match="Data out of range"):
        m.set_crosshead_rate(1e4)


def test_return_with_an_intact_deformed_specimen_stops_on_specimen_protection() -> None:
    world, m = _frame()
    m.set_crosshead_rate(20.0)
    m.set_sample_rate(1000.0)  # the check acts per sample: 0.83 um (about 30 N) per sample
    m.mount("generic:316L", 10.0)
    m.start_test()
    world.advance(6.0)  # about 2 mm: well past yield
    m.stop()
    m.return_home()
    world.advance(60.0)
    assert m.mode is Mode.IDLE and m.fault is Fault.NONE
    assert m.position > 0.5  # stopped short of 0 instead of crushing the specimen
    assert -m.cfg.protect_force_n - 40 < m.last[1] < 0


def _events(world: World, seconds: float) -> int:
    """Advance ``world`` by ``seconds`` and return how many SimPy events it processed."""
    env, count = world.env, 0
    step = env.step

    def counted() -> None:
        nonlocal count
        count += 1
        step()

    env.step = counted  # type: ignore[method-assign]
    try:
        world.advance(seconds)
    finally:
        del env.step
    return count


def test_an_idle_frame_schedules_nothing_and_a_command_sets_it_going() -> None:
    """Idle, the frame's control loop rests (it adds no event to the world's: a world with a
    frame runs at high speed-ups); a move wakes it, it steps on its 0.1 s grid while the
    crosshead moves (where a continuous move at the rate puts it), then rests again."""
    bare = World()
    bare.pause()
    world, model = _frame()
    world.advance(1.0)  # the process starts
    bare.advance(1.0)
    assert _events(world, 1000.0) == _events(bare, 1000.0)
    model.set_crosshead_rate(60.0)  # 1 mm/s
    model.move_to(5.0)
    assert model.mode is Mode.MOVE
    assert _events(world, 2.0) >= 20  # its control steps
    model.stop()
    assert model.position == pytest.approx(2.0, abs=1e-9)
    world.advance(1.0)  # its next step finds it idle
    bare.advance(3.0)
    assert _events(world, 1000.0) == _events(bare, 1000.0)
