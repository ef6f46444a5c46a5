"""The checker tests' fixture: a migrated schema, a fake clock and a probe on the results exchange."""

from tests.support.checker import cw

__all__ = ["cw"]
