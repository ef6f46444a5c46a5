"""The admin tests' fixture: the admin API on a real listener over the test's own database and broker prefix."""

from tests.support.admin import admin

__all__ = ["admin"]
