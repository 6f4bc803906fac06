"""What the engine holds: the dates and amounts every input (CSV rows, config, chat, questions)
is checked against, so that a value it cannot hold is refused where it comes in instead of
breaking every answer later.

- Dates: facts live in pandas ``datetime64[ns]`` columns, which hold 1677-09-21 to 2262-04-11.
  kpibot accepts 1900-01-01 to 2199-12-31: every comparison (previous period, same period last
  year) and window (conversion, pacing) of a period inside that range stays inside what pandas
  holds, and no sales data predates 1900.
- Amounts: money becomes int64 minor units through float64, which is exact to 2**53 ≈ 9.007e15
  minor units (9.007e13 in a currency with cents), and the store keeps 16 digits before the
  decimal point. Amounts, targets and rates must stay below 10**13 in absolute value: exact to
  the cent, and a sum of 90 000 such amounts still fits in int64.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2199, 12, 31)
MAX_AMOUNT = Decimal(10) ** 13

DATE_RANGE = f"{FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()}"
# Written out in groups of three, in every language's messages alike.
MAX_AMOUNT_TEXT = "10 000 000 000 000"


def date_problem(value: date) -> str | None:
    """Why ``value`` cannot be stored, or None."""
    if FIRST_DATE <= value <= LAST_DATE:
        return None
    return f"{value.isoformat()} is outside the dates kpibot holds ({DATE_RANGE})"


def amount_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be stored exactly, or None."""
    if value.is_finite() and abs(value) < MAX_AMOUNT:
        return None
    shown = f"{value.normalize():f}"
    return f"{shown} is beyond the largest amount kpibot holds exactly (below {MAX_AMOUNT_TEXT})"
