"""One module per vendor: what it sends, how a source of it authenticates, the events it documents,
and its normalizer (raw envelope in, normalized events out; pure functions, no I/O). A fifth vendor
is one module here, its payload Structs in schemas/, its `Vendor` value, and one line below."""

from collections.abc import Mapping
from typing import Final

from schemas.vendor import Vendor
from vendors import inspera, itep, synap, testpress
from vendors.base import VendorSpec

SPECS: Final[Mapping[Vendor, VendorSpec]] = {
    spec.vendor: spec for spec in (itep.SPEC, inspera.SPEC, synap.SPEC, testpress.SPEC)
}
assert set(SPECS) == set(Vendor), "every Vendor has its module"
