"""The fixed "as of" date of the synthetic regions the tests build, so that no test passes or fails by the calendar.

A region is drawn relative to its "as of" date (its people's ages, its studies' dates). Tests that build one pass
:data:`AS_OF`, and tests that ask for a duplicate check over it pass a request time relative to it, never today's
date. ``PRIORSCAN_TEST_AS_OF=YYYY-MM-DD`` moves it, to show that the suite holds on any day.
"""

from __future__ import annotations

import os
from datetime import date

AS_OF = date.fromisoformat(os.environ.get("PRIORSCAN_TEST_AS_OF") or "2026-06-15")

__all__ = ["AS_OF"]
