"""Routes a raw envelope to its vendor's normalizer."""

from collections.abc import Callable

from schemas.envelope import RawEnvelope
from schemas.vendor import Vendor
from workers.vendors import inspera, itep, synap, testpress
from workers.vendors.base import Normalized

_NORMALIZERS: dict[Vendor, Callable[[RawEnvelope], list[Normalized]]] = {
    Vendor.ITEP: itep.normalize,
    Vendor.INSPERA: inspera.normalize,
    Vendor.SYNAP: synap.normalize,
    Vendor.TESTPRESS: testpress.normalize,
}


def normalize(envelope: RawEnvelope) -> list[Normalized]:
    """Normalized events of one webhook; raises RejectedWebhook when it can never be processed."""
    return _NORMALIZERS[envelope.vendor](envelope)
