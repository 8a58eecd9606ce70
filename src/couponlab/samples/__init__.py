"""The sample registry: every coupon and specimen of every campaign, in one SQLite file.

>>> from couponlab.samples import SampleRegistry
>>> reg = SampleRegistry("runs/samples.sqlite")          # doctest: +SKIP
>>> reg.genealogy("NiCr-01-C01")                          # doctest: +SKIP

See docs/howto/query-samples.md and docs/decisions/0061-sample-registry-in-sqlite.md.
"""

from couponlab.errors import RegistryError
from couponlab.samples._registry import DEFAULT_PATH, SampleRegistry
from couponlab.samples._schema import SCHEMA_VERSION

__all__ = ["DEFAULT_PATH", "SCHEMA_VERSION", "RegistryError", "SampleRegistry"]
