"""CSV reading options shared by the readers."""

from __future__ import annotations

import pandas as pd

# pandas < 3 needs float_precision="round_trip" for floats to read back bit for bit;
# pandas 3 reads them so by default and deprecates the argument.
ROUND_TRIP = ({"float_precision": "round_trip"}
              if int(pd.__version__.split(".")[0]) < 3 else {})
"""Keyword arguments of :func:`pandas.read_csv` for exact float round trips."""
