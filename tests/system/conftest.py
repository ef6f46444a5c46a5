"""The system tests' fixture: the test's own schema, migrated, for processes that expect one."""

from tests.support.services import migrated

__all__ = ["migrated"]
