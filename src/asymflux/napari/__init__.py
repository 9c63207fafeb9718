"""napari plugin: reader, demo sample data and the particle-curation dock widget.

The npe2 manifest is ``napari.yaml`` in this folder (entry point
``asymflux = "asymflux.napari:napari.yaml"``). Importing this package imports neither
napari nor Qt; the reader (:mod:`._reader`) does not need Qt either, the widget
(:mod:`._widget`) does.
"""

__all__ = ["napari_get_reader"]


def __getattr__(name):
    if name == "napari_get_reader":
        from ._reader import napari_get_reader

        return napari_get_reader
    raise AttributeError(f"module 'asymflux.napari' has no attribute {name!r}")
