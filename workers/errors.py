"""The router's own outcome: a webhook that can never be processed as sent."""

from common.errors import Reject


class RejectedWebhook(Reject):
    """Stored as rejected with this reason and acked (replayable after a fix)."""
