"""Model explorer dashboard: ``panel serve dashboards/model_explorer.py`` (docs/dashboards.md).

Page arguments: ``?dataset=<demo name or folder path>&particle=<id>&time_offset=<s or auto>``
(the clock offset: cycler time = frame time + offset). The view loads the
HoloViews and Panel extensions it needs itself (like the cohort browser); it checks the
particle against the dataset's (a clear message when the dataset has no such particle).
"""

from asymflux.views import ModelExplorer
from asymflux.views._runtime import session_arg, start_page, warming

if warming():  # `panel serve --warm`: the imports above are the warm-up; no simulation runs
    pass  # (a page built here would start the worker pool in a session no browser has)
else:
    ModelExplorer(
        dataset=session_arg("dataset", "aged"),
        particle_arg=session_arg("particle"),
        time_offset=session_arg("time_offset", ""),
    ).servable(title="asymflux model explorer")
    start_page()  # gc.freeze once the page has loaded; a closed page's last update: no traceback
