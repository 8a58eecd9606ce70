"""The test-frame interface: what plans may ask of any universal (tensile) test frame.

A test frame grips a specimen, pulls it at a controlled rate and samples force, crosshead
position and extensometer strain into its own buffer. Plans type their arguments with
:class:`TestFrame` and build requests from the dataclasses here; they never import a vendor
driver.

Request fields accept pint quantities, strings such as ``"0.48 mm/min"``, or numbers in the
documented unit. The driver validates them against the frame's own limits (read at
connect) and the lab file's limits *before* anything is written to the instrument.

The curve is collected the fly-scan way: ``kickoff`` starts the test, ``complete`` finishes
when the test has ended (fracture, stop or fault) and every buffered sample has been
written; in between ``collect`` emits StreamResource/StreamDatum documents that reference
the samples in an HDF5 file (docs/decisions/0020-frame-bulk-data-path.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from bluesky.protocols import Collectable, Flyable, Stoppable, WritesStreamAssets
from numpy.typing import NDArray
from ophyd_async.core import AsyncStatus

from couponlab.errors import InstrumentError
from couponlab.interfaces._lab_device import LabDevice
from couponlab.units import QuantityLike, quantity_metadata

FloatArray = NDArray[np.float64]


class SamplesLostError(InstrumentError):
    """Samples were overwritten in the frame's buffer before they were read."""


class TestAbortedError(InstrumentError):
    """A test ended on a fault (over-force, travel limit) instead of fracture or a stop."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class SpecimenGeometry:
    """Dimensions of a flat tensile specimen (ASTM E8/E8M sheet type).

    Defaults are the E8M sub-size sheet specimen (100 mm overall: it does not fit a
    60 mm coupon; :data:`couponlab.specimens.SS_J3` is the miniature geometry that does);
    the thickness, when ``None``, comes from the lab file's ``settings.specimen_thickness``
    (or the frame's default).

    Attributes
    ----------
    gauge_length
        Extensometer gauge length, mm (5 .. 200).
    width
        Width of the reduced section, mm (0.5 .. 50).
    thickness
        Thickness, mm (0.1 .. 20).
    reduced_length
        Length of the reduced (parallel) section, mm (>= gauge length, <= 400).
    overall_length
        Overall length, grips included, mm (>= reduced length, <= 1000); ``None``: unknown
        (the reduced length is then what must fit the coupon).
    grip_width
        Width of the grip ends, mm (>= width, <= 200); ``None``: unknown (the reduced
        section's width is then what must fit the coupon).
    designation
        The geometry's name as a report prints it (the standard or class it follows).
    """

    gauge_length: QuantityLike = "25 mm"
    width: QuantityLike = "6 mm"
    thickness: QuantityLike | None = None
    reduced_length: QuantityLike = "32 mm"
    overall_length: QuantityLike | None = "100 mm"
    grip_width: QuantityLike | None = "10 mm"
    designation: str = "ASTM E8M sub-size sheet"


@dataclass(frozen=True)
class TestSettings:
    """How a test is run.

    Attributes
    ----------
    control
        ``"crosshead"`` (crosshead-rate control, ASTM E8 method C) or ``"strain"``
        (extensometer strain-rate control, method B).
    crosshead_rate
        Crosshead rate, mm/min (frame range, e.g. 0.001 .. 500). Also used for preload.
    strain_rate
        Strain rate, 1/min (used in ``"strain"`` control).
    sample_rate
        Sampling rate of force, position and strain into the buffer, Hz (e.g. 1 .. 10000).
    force_limit
        Over-force limit, N (at most the load cell capacity and the lab limit);
        ``None`` keeps the lab limit (or the capacity).
    """

    __test__ = False

    control: Literal["crosshead", "strain"] = "crosshead"
    crosshead_rate: QuantityLike = "0.48 mm/min"
    strain_rate: QuantityLike = "0.015 / min"
    sample_rate: QuantityLike = "100 Hz"
    force_limit: QuantityLike | None = None


@dataclass(frozen=True)
class FrameLimits:
    """What the frame (and the lab file) allow; units in the names."""

    capacity_n: float
    force_limit_max_n: float
    crosshead_rate_mm_per_min: tuple[float, float]
    strain_rate_per_min: tuple[float, float]
    sample_rate_hz: tuple[float, float]
    travel_mm: tuple[float, float]


@dataclass(frozen=True)
class TestOutcome:
    """How the last test ended.

    Attributes
    ----------
    end
        ``"BREAK"`` (specimen break detected), ``"STOP"`` (stopped by command) or
        ``"FAULT"`` (over-force or travel limit).
    fault
        The latched fault (``"NONE"``, ``"OVERFORCE"``, ``"TRAVEL"``).
    samples
        Samples the frame produced in the test.
    written
        Samples written to the data file (equal to ``samples`` when none were lost).
    slips
        Grip slips the frame detected.
    """

    __test__ = False

    end: str
    fault: str
    samples: int
    written: int
    slips: int


@dataclass(frozen=True)
class TensileCurve:
    """The samples of one test, as written to the data file.

    Attributes
    ----------
    time
        Test time, s.
    force
        Force, N.
    position
        Crosshead position, mm.
    strain
        Extensometer engineering strain, mm/mm.
    area
        Initial cross-section of the specimen, mm^2.
    gauge_length
        Extensometer gauge length, mm.
    """

    time: FloatArray
    force: FloatArray
    position: FloatArray
    strain: FloatArray
    area: float
    gauge_length: float


@runtime_checkable
class TestFrame(LabDevice, Flyable, Collectable, WritesStreamAssets, Stoppable, Protocol):
    """A universal test frame with load cell, crosshead control and extensometer.

    (Test modules should reach this as ``frame.TestFrame`` rather than import the name, or
    pytest tries to collect it.)
    """

    async def limits(self) -> FrameLimits:
        """Return the frame's and the lab's limits."""
        ...

    def mount(
        self,
        coupon_id: str,
        position: QuantityLike,
        geometry: SpecimenGeometry | None = None,
        *,
        across: QuantityLike | None = None,
        coupon_width: QuantityLike | None = None,
        coupon_length: QuantityLike | None = None,
    ) -> AsyncStatus[None]:
        """Grip a specimen cut from ``coupon_id`` with its gauge centred at (``position``,
        ``across``), with ``geometry`` (E8M sub-size by default).

        Coupon coordinates are mm from the coupon's corner: ``position`` along its length
        (x), ``across`` across its width (y, >= 0; ``None`` is the centre line). The gauge
        length runs along x; the specimen's width spans ``across`` +/- width/2.
        ``coupon_width`` and ``coupon_length`` (mm), when given (else the lab file's),
        bound ``across`` and the specimen's outline before a byte is sent: a specimen that
        sticks out of the coupon is refused (an InputError naming the side).
        """
        ...

    def dismount(self) -> AsyncStatus[None]:
        """Take the specimen out of the grips."""
        ...

    def configure_test(self, settings: TestSettings) -> AsyncStatus[None]:
        """Validate and send the settings of the next test."""
        ...

    def preload(self, force: QuantityLike) -> AsyncStatus[None]:
        """Pull at the crosshead rate until ``force`` (N) is reached, then hold."""
        ...

    def return_home(self) -> AsyncStatus[None]:
        """Move the crosshead back to its start position (allowed after a fault)."""
        ...

    def unload(self) -> AsyncStatus[None]:
        """Move in compression until the force is near zero, then hold."""
        ...

    async def outcome(self) -> TestOutcome:
        """Return how the last test ended."""
        ...

    def curve(self) -> TensileCurve:
        """Return the samples of the last test read back from its data file."""
        ...

    async def reset_fault(self) -> None:
        """Clear a latched fault whose cause is gone."""
        ...


def describe_geometry(geometry: SpecimenGeometry) -> dict[str, Any]:
    """Return the geometry as run metadata: each given dimension as ``{"value": <float>,
    "units": "mm"}`` (a dimension of ``None``, e.g. the frame's default thickness, is left
    out) and ``designation`` as text.

    Raises
    ------
    UnitError
        A dimension is not a length.
    """
    out: dict[str, Any] = {
        k: quantity_metadata(v, "mm", what=k)
        for k, v in geometry.__dict__.items()
        if v is not None and k != "designation"
    }
    out["designation"] = geometry.designation
    return out


__all__ = [
    "FrameLimits",
    "SamplesLostError",
    "SpecimenGeometry",
    "TensileCurve",
    "TestAbortedError",
    "TestFrame",
    "TestOutcome",
    "TestSettings",
    "describe_geometry",
]
