"""Cohort browser dashboard: ``panel serve dashboards/cohort.py`` (docs/dashboards.md).

Page argument: ``?datasets=<demo group, names/paths separated by commas, or a folder>``.
"""

import panel as pn

from asymflux.views import CohortBrowser
from asymflux.views._common import session_arg

pn.extension("tabulator")

CohortBrowser(datasets=session_arg("datasets", "cohorts")).servable(title="asymflux cohort browser")
