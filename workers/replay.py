"""Replay moved to common/replay.py (the admin console replays too); kept here for the operator CLI
and existing imports."""

from common.replay import (
    REPLAYED,
    replay_dead_letters,
    replay_delivery_dead_letters,
    replay_rejected,
    republish_rejected,
)

__all__ = [
    "REPLAYED",
    "replay_dead_letters",
    "replay_delivery_dead_letters",
    "replay_rejected",
    "republish_rejected",
]
