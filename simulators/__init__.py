"""SimPy digital twins of every couponlab instrument, served over the instruments' own
wire protocols, sharing one simulated :class:`~couponlab.simulators.world.World`.

Runtime code never imports this package, except through :mod:`couponlab.twins`, the one
entry point that starts the twins a lab file asks for.
"""

from couponlab.simulators.world import Coupon, OxidationModel, World, WorldConfig

__all__ = ["Coupon", "OxidationModel", "World", "WorldConfig"]
