"""Routes a raw envelope to its vendor's normalizer."""

from schemas.envelope import RawEnvelope
from vendors import SPECS
from vendors.base import Normalized


def normalize(envelope: RawEnvelope) -> list[Normalized]:
    """Normalized events of one webhook; raises RejectedWebhook when it can never be processed."""
    return SPECS[envelope.vendor].normalize(envelope)
