"""The frame twin's specimens remember their coupon's exposure: the metal the oxide consumed
is off the load-bearing section, while the frame reports force on the nominal one.

The world is paused and stepped with ``advance`` (no wall clock); the frame twin is made
after the exposure, so the 50 h hold costs only the oxidation steps.
"""

from __future__ import annotations

import numpy as np
import pytest

from couponlab.simulators.control import TRUTHS, ControlError
from couponlab.simulators.frame.material import MechanicsModel, Scatter
from couponlab.simulators.frame.model import FrameConfig, FrameError, FrameModel
from couponlab.simulators.oxidation_regimes import (
    RegimeParameters,
    ScaleMechanics,
    ScaleState,
    Spallation,
    grow,
)
from couponlab.simulators.world import Coupon, OxidationModel, World, WorldConfig

NI_10CR = {"Ni": 0.90, "Cr": 0.10}
"""Below the critical Cr content: NiO grows fast."""
HOLD_S = 50 * 3600.0
NO_SCATTER = Scatter(modulus=0.0, yield_stress=0.0, hardening=0.0, ductility=0.0)


class _Furnace:
    """A holder at one temperature along its whole axis."""

    def __init__(self, kelvin: float) -> None:
        self.kelvin = kelvin

    def temperature_along(self, x_mm: np.ndarray) -> np.ndarray:
        return np.full_like(np.asarray(x_mm, float), self.kelvin)


def _exposed_world(config: WorldConfig | None = None) -> World:
    """A world with coupon "hot" held 50 h at 1000 degC, cooled, and its unexposed sister."""
    world = World(config, paused=True)
    for name in ("hot", "sister"):
        world.add_coupon(Coupon(name, length_mm=60.0, width_mm=10.0)).set_composition(NI_10CR)
    world.place("hot", _Furnace(1273.15), "furnace1")
    world.advance(HOLD_S)
    world.place("hot", None)  # out of the furnace: cooled to ambient, checked for spallation
    world.advance(120.0)
    return world


def _pull(world: World, m: FrameModel, coupon: str) -> tuple[float, float]:
    """Mount an SS-J3 specimen of ``coupon`` at (30, 5) mm, pull it to break; return
    (load-bearing area mm^2, peak force N)."""
    m.set_geometry(5.0, 1.2, 0.5, 5.0)
    m.mount(coupon, 30.0, 5.0)
    assert m.specimen is not None
    area = m.specimen.area_mm2
    m.start_test()
    world.advance(120.0)  # 5 mm/min: fracture (about 0.4 x 5 mm) in about 25 s
    assert m.end_reason == "BREAK"
    peak = float(m.fetch(0, m.produced)[:, 1].max())
    m.remove()
    return area, peak


def test_an_exposed_specimen_carries_less_force_than_its_unexposed_sister() -> None:
    world = _exposed_world()
    hot, sister = world.coupon("hot"), world.coupon("sister")
    assert hot.exposure_s == pytest.approx(HOLD_S, abs=60.0)
    assert sister.exposure_s == 0.0 and not sister.recession_m.any()
    recession_m = float(hot.recession_m.mean())
    # NiO (Pilling-Bedworth 1.65) grown at 1000 degC for 50 h: about 15 um of scale
    assert 5e-6 < recession_m < 20e-6
    oxide_m = float(np.sqrt(hot.oxide_x2_m2).mean())
    assert recession_m == pytest.approx(oxide_m / 1.65, rel=0.02)

    m = FrameModel(world, FrameConfig(force_noise_n=0.0), MechanicsModel(scatter=NO_SCATTER))
    m.set_crosshead_rate(5.0)
    hot_area, hot_peak = _pull(world, m, "hot")
    sister_area, sister_peak = _pull(world, m, "sister")
    assert sister_area == pytest.approx(1.2 * 0.5)
    # the control channel's truth tells the same recession (uniform coupon: any point)
    truth = TRUTHS["recession"](world, {"coupon_id": "hot", "x_mm": [30.0], "y_mm": [5.0]})
    assert truth["recession_um"] == [pytest.approx(recession_m * 1e6, rel=1e-9)]
    assert truth["exposure_s"] == hot.exposure_s
    with pytest.raises(ControlError, match="no coupon 'cold'"):
        TRUTHS["recession"](world, {"coupon_id": "cold", "x_mm": [30.0]})
    assert hot_area == pytest.approx(1.2 * (0.5 - recession_m * 1e3), rel=1e-3)
    # the same material: the peak force falls with the load-bearing section, so the UTS on
    # the nominal section (what the analysis reports) falls by the recession over 0.5 mm
    assert hot_peak / sister_peak == pytest.approx(hot_area / sister_area, rel=2e-3)
    assert hot_peak < sister_peak * (1 - 0.01)


def test_machined_clear_of_the_oxidised_face_a_specimen_keeps_its_section() -> None:
    world = _exposed_world()
    mech = MechanicsModel(scatter=NO_SCATTER, exposed_faces=0)
    m = FrameModel(world, FrameConfig(force_noise_n=0.0), mech)
    m.set_geometry(5.0, 1.2, 0.5, 5.0)
    m.mount("hot", 30.0, 5.0)
    assert m.specimen is not None
    assert m.specimen.recession_mm > 0.005
    assert m.specimen.area_mm2 == pytest.approx(0.6)


def test_spalled_oxide_consumed_metal_all_the_same() -> None:
    weak = Spallation(
        nio=ScaleMechanics(modulus_gpa=200.0, mismatch_per_k=2.5e-6, fracture_energy_j_per_m2=1.0),
        scatter=0.0,
    )
    config = WorldConfig(oxidation=OxidationModel(regimes=RegimeParameters(spallation=weak)))
    world = _exposed_world(config)
    hot = world.coupon("hot")
    assert hot.scales is not None and hot.scales.spalled.all()
    oxide_m = float(np.sqrt(hot.oxide_x2_m2).mean())
    recession_m = float(hot.recession_m.mean())
    # the scale spalled on cooling to 15 % of itself; the metal it consumed stays consumed
    assert recession_m == pytest.approx(oxide_m / 0.15 / 1.65, rel=0.02)


def test_a_specimen_whose_section_oxidation_consumed_is_refused() -> None:
    world = _exposed_world()
    m = FrameModel(world, FrameConfig(), MechanicsModel(scatter=NO_SCATTER))
    m.set_geometry(5.0, 1.2, 0.1, 5.0)
    assert float(world.coupon("hot").recession_m.mean()) * 1e3 < 0.02  # about 0.009 mm
    m.mount("hot", 30.0, 5.0)  # 0.1 mm thick still carries load
    m.remove()
    mech = MechanicsModel(scatter=NO_SCATTER, exposed_faces=2)
    world.coupon("hot").recession_m *= 10.0  # as if 100x longer: 2 x 0.09 mm of 0.1
    m2 = FrameModel(world, FrameConfig(), mech, name="frame2")
    m2.set_geometry(5.0, 1.2, 0.1, 5.0)
    with pytest.raises(FrameError, match=r"oxidation consumed .* of the 0\.1 mm thick") as info:
        m2.mount("hot", 30.0, 5.0)
    assert info.value.code == -200 and m2.specimen is None


def test_a_coupon_the_world_does_not_know_is_refused_and_generic_is_asked_for() -> None:
    world = World(paused=True)
    m = FrameModel(world, FrameConfig())
    with pytest.raises(FrameError, match="coupon 'nope' is unknown to the world") as info:
        m.mount("nope", 10.0)
    assert info.value.code == -224 and m.specimen is None
    world.add_coupon(Coupon("blank"))  # made, never printed
    with pytest.raises(FrameError, match="coupon 'blank' is not printed"):
        m.mount("blank", 10.0)
    m.mount("generic:316L", 10.0)
    assert m.specimen is not None and not m.specimen.from_coupon
    assert m.specimen.composition == m.cfg.default_material
    assert m.specimen.area_mm2 == m.specimen.nominal_area_mm2


def test_recession_weights_each_scale_as_the_thickness_does_ni_al_too() -> None:
    params = RegimeParameters()
    state = ScaleState.new((3,), params, np.random.default_rng(0))
    cr = np.array([0.05, 0.35, 0.0])
    al = np.array([0.0, 0.0, 0.20])  # NiO, chromia, alumina formers
    for _ in range(600):  # 10 h at 1000 degC in 60 s steps
        grow(state, cr, np.full(3, 1273.15), 60.0, params, al)
    recession = state.metal_recession_m(cr, params, al)
    thickness = state.thickness_m(cr, params, al)
    # hot, no spallation: NiO and alumina recession = oxide / its Pilling-Bedworth ratio
    assert recession[[0, 2]] == pytest.approx(thickness[[0, 2]] / [1.65, 1.28], rel=1e-3)
    # chromia also lost kv t to CrO3, which consumed metal as well
    evaporated = float(params.volatilisation.kv(np.array(1273.15))) * 600 * 60.0
    assert recession[1] * 2.07 - thickness[1] == pytest.approx(evaporated, rel=0.05)
    assert recession[0] > 2.5 * recession[1] and recession[0] > 2.5 * recession[2]  # NiO: fast


def test_a_reduced_section_longer_than_the_coupon_is_refused() -> None:
    world = World(paused=True)
    world.add_coupon(Coupon("short", length_mm=20.0, width_mm=10.0)).set_composition(NI_10CR)
    m = FrameModel(world, FrameConfig())
    m.set_geometry(25.0, 6.0, 2.0, 32.0)  # E8M sub-size: a 32 mm parallel section
    with pytest.raises(FrameError, match=r"32 x 6 mm reduced section .* coupon 'short' \(20 x"):
        m.mount("short", 10.0)
    assert m.specimen is None
    m.set_geometry(5.0, 1.2, 0.5, 5.0)  # SS-J3
    m.mount("short", 10.0)
    assert m.specimen is not None and m.specimen.from_coupon
