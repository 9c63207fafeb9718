"""Readers, writers and the dataset folder (layout: ``docs/dataset-format.md``).

Bare stacks (``read_tiff``, ``read_tiff_folder``, ``read_zarr``, ``read_npy``, ``read_stack``)
come back as :class:`RawStack` ``(stack, time_s, pixel_nm, source)``; ``read_hdf5`` and
``read_dataset`` give a :class:`Dataset`. Cycler files of every supported brand
(``read_echem``, chosen by content; ``docs/formats.md``) give a DataFrame ``time_s,
voltage_V, current_mA, charge_mAh`` (+ ``capacity_mAh_g``); ``cycle_summary`` splits one
into cycles. Every error about input is a :class:`DatasetError` naming the file.
"""

from asymflux.io._curation_files import write_annotations, write_masks
from asymflux.io._errors import DatasetError
from asymflux.io._folder import read_annotations, read_dataset, read_masks
from asymflux.io._hdf5 import read_hdf5
from asymflux.io._writers import write_dataset
from asymflux.io.dataset import (
    ANNOTATION_COLUMNS,
    REQUIRED_METADATA,
    Dataset,
    check_masks,
    dataset_folders,
)
from asymflux.io.echem import (
    ECHEM_COLUMNS,
    MPR_COLUMNS,
    EchemWarning,
    cycle_summary,
    echem_format,
    integrate_capacity,
    label_half_cycles,
    read_echem,
    read_echem_csv,
    read_mpr,
    read_mpt,
)
from asymflux.io.instrument import read_tdms
from asymflux.io.readers import read_stack
from asymflux.io.stacks import (
    RawStack,
    read_npy,
    read_tiff,
    read_tiff_folder,
    read_zarr,
)

__all__ = [
    "ANNOTATION_COLUMNS",
    "ECHEM_COLUMNS",
    "MPR_COLUMNS",
    "REQUIRED_METADATA",
    "Dataset",
    "DatasetError",
    "EchemWarning",
    "RawStack",
    "check_masks",
    "dataset_folders",
    "cycle_summary",
    "echem_format",
    "integrate_capacity",
    "label_half_cycles",
    "read_annotations",
    "read_dataset",
    "read_echem",
    "read_echem_csv",
    "read_hdf5",
    "read_masks",
    "read_mpr",
    "read_mpt",
    "read_npy",
    "read_stack",
    "read_tdms",
    "read_tiff",
    "read_tiff_folder",
    "read_zarr",
    "write_annotations",
    "write_dataset",
    "write_masks",
]
