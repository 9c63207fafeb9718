"""Cohort browser dashboard: ``panel serve dashboards/cohort.py`` (docs/dashboards.md).

Page arguments: ``?datasets=<demo group, names/paths separated by commas, or a folder>`` and
``&time_offset=<s or auto>`` (the clock offset of every dataset: cycler time = frame time +
offset).
The view loads the HoloViews and Panel extensions it needs itself, so this page works
served alone, first, or beside the model explorer.
"""

from asymflux.views._runtime import session_arg, start_page, timing_mark

timing_mark("cohort page: app file runs")
from asymflux.views import CohortBrowser  # noqa: E402

CohortBrowser(datasets=session_arg("datasets", "cohorts"),
              time_offset=session_arg("time_offset", "")).servable(title="asymflux cohort browser")
timing_mark("cohort page: document made")
start_page()  # gc.freeze once the page has loaded; a closed page's last update: no traceback
