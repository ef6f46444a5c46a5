"""Typed errors raised while handling a message; the consumer loop decides what each one means."""


class RejectedWebhook(Exception):
    """The webhook can never be processed as sent: it is stored as rejected with this reason and acked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
