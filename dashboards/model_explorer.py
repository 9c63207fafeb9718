"""Model explorer dashboard: ``panel serve dashboards/model_explorer.py`` (docs/dashboards.md).

Page arguments: ``?dataset=<demo name or folder path>&particle=<id>``. The view loads the
HoloViews and Panel extensions it needs itself (like the cohort browser).
"""

from asymflux.views import ModelExplorer
from asymflux.views._common import session_arg

particle = session_arg("particle")
ModelExplorer(
    dataset=session_arg("dataset", "aged"),
    particle_id=int(particle) if particle and particle.isdigit() else None,
).servable(title="asymflux model explorer")
