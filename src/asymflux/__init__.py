"""asymflux: operando single-particle imaging of battery cathodes.

Quantify where lithium leaves each particle (asymmetry of the shrinking core), curate
particles, and compare with a diffusion model of a particle whose surface is partly
blocked by a rock-salt layer (Lun et al., Energy Environ. Sci. 18, 4097 (2025)).

Subpackages are imported on use: ``asymflux.model``, ``asymflux.io``,
``asymflux.optics``, ``asymflux.datasets``, ``asymflux.analysis``.
"""

__version__ = "0.1.0"
