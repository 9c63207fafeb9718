"""Live dashboard: ``panel serve dashboards/live.py`` (docs/dashboards.md, docs/live.md).

Page arguments: ``?source=<demo-live folder or movie being written>&poll_s=<seconds>``.
Switch *Live* on to follow the source.
"""

from asymflux.views import LivePage
from asymflux.views._runtime import session_arg, start_page

LivePage(source=session_arg("source", ""),
         poll_s=float(session_arg("poll_s", 1.0))).servable(title="asymflux live")
start_page()  # gc.freeze once the page has loaded; a closed page's last update: no traceback
