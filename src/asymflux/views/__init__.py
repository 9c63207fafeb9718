"""Panel dashboards as :class:`panel.viewable.Viewer` classes (one class per view).

- :class:`ModelExplorer` (``dashboards/model_explorer.py``): the diffusion model's θ maps
  (Fig. 4), rate capability (Fig. 5b) and a simulated twin of a measured particle beside
  the measured one (d(capacity) and line-cut kymograph, Fig. 5c, d).
- :class:`CohortBrowser` (``dashboards/cohort.py``): symmetric/asymmetric counts per ageing
  condition with Wilson intervals (Fig. 5e) and any particle's differential movie.
- :class:`LivePage` (``dashboards/live.py``) over :class:`LiveSettings`: follow a movie while
  it is written (the latest differential frame, d(capacity), classification, kymograph).

Serve both with ``panel serve dashboards/model_explorer.py dashboards/cohort.py``
(``docs/dashboards.md``). Panel is imported only when a view is used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ModelExplorer": "model_explorer",
    "CohortBrowser": "cohort",
    "LivePage": "live",
    "LiveSettings": "live",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'asymflux.views' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
