"""Model explorer dashboard: ``panel serve dashboards/model_explorer.py`` (docs/dashboards.md).

Page arguments: ``?dataset=<demo name or folder path>&particle=<id>``.
"""

import panel as pn

from asymflux.views import ModelExplorer
from asymflux.views._common import session_arg

pn.extension()

particle = session_arg("particle")
ModelExplorer(
    dataset=session_arg("dataset", "aged"),
    particle_id=int(particle) if particle and particle.isdigit() else None,
).servable(title="asymflux model explorer")
