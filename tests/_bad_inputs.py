"""Bad inputs shared by tests/test_bad_inputs_api.py and tests/test_bad_inputs_cli.py (#15).

A small good dataset folder, and *breakers*: functions that damage a copy of it in one way
(a boolean pixel size, a decimal-comma CSV, an all-zero stack, ...). Each test copies the
good folder, breaks it, snapshots everything, runs the front end and checks the message,
and that nothing was written.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from asymflux import io

SHAPE = (40, 48)
N_FRAMES = 8


def good_dataset(*, masks=True, n_frames=N_FRAMES) -> io.Dataset:
    """Two disks whose bright Li-poor shell grows inwards, asymmetrically for particle 2."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    labels = np.zeros(SHAPE, np.uint16)
    labels[(yy - 20) ** 2 + (xx - 13) ** 2 < 81] = 1
    labels[(yy - 20) ** 2 + (xx - 35) ** 2 < 81] = 2
    stack = np.full((n_frames, *SHAPE), 100.0)
    for k in range(n_frames):
        r = 9 * (1 - k / (n_frames - 1))  # the core vanishes at the last frame
        for cx, shift in ((13, 0.0), (35, 3.0 * k / n_frames)):
            d2_out = (yy - 20) ** 2 + (xx - cx) ** 2
            d2_core = (yy - 20) ** 2 + (xx - cx - shift) ** 2
            stack[k][(d2_out < 81) & (d2_core >= r * r)] = 130.0
    stack = (stack + rng.normal(0, 0.3, stack.shape)).astype(np.float32)
    t = np.arange(n_frames) * 60.0
    echem = pd.DataFrame({"time_s": np.linspace(0, t[-1], 4 * n_frames),
                          "voltage_V": np.linspace(3.6, 4.2, 4 * n_frames),
                          "current_mA": 0.01,
                          "capacity_mAh_g": np.linspace(0, 40, 4 * n_frames)})
    return io.Dataset(stack=stack, time_s=t, pixel_nm=65.0, echem=echem,
                      metadata={"material": "NMC88", "ageing": "fresh", "rate_mA_g": 100.0,
                                "cell": "optical half-cell", "active_mass_mg": 0.5},
                      masks=labels if masks else None)


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its type and content: equal = nothing written."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        st = p.lstat()
        if stat.S_ISREG(st.st_mode):
            out[str(p.relative_to(root))] = ("file", p.read_bytes(), st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            out[str(p.relative_to(root))] = ("dir",)
        else:
            out[str(p.relative_to(root))] = ("other", os.readlink(p) if p.is_symlink() else "")
    return out


# --------------------------------------------------------------------------- breakers
# Each takes the dataset folder (a copy) and damages it.


def set_meta(**fields):
    def brk(folder: Path):
        meta = json.loads((folder / "metadata.json").read_text())
        meta.update(fields)
        (folder / "metadata.json").write_text(json.dumps(meta))
    return brk


def write_meta_text(text: str):
    def brk(folder: Path):
        (folder / "metadata.json").write_text(text)
    return brk


def remove(name: str):
    def brk(folder: Path):
        p = folder / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return brk


def truncate(name: str, fraction: float = 0.5):
    def brk(folder: Path):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * fraction)])
    return brk


def decimal_comma(name: str, *, sep=";"):
    """Rewrite a CSV as a decimal-comma locale writes it (``sep=';'``), or with quoted
    decimal commas in a comma-separated file (``sep=','``)."""
    def brk(folder: Path):
        df = pd.read_csv(folder / name)
        if name == "annotations.csv":
            df["particle_id"] = df["particle_id"].astype(float)
        df.to_csv(folder / name, index=False, sep=sep, decimal=",")
    return brk


def edit_csv(name: str, func):
    def brk(folder: Path):
        df = pd.read_csv(folder / name)
        new = func(df)
        (df if new is None else new).to_csv(folder / name, index=False)
    return brk


def set_cell(name: str, row, column, value):
    def brk(folder: Path):
        df = pd.read_csv(folder / name)
        df[column] = df[column].astype(object) if isinstance(value, str) else df[column]
        df.loc[row, column] = value
        df.to_csv(folder / name, index=False)
    return brk


def write_text(name: str, text: str):
    def brk(folder: Path):
        (folder / name).write_text(text)
    return brk


def stack_values(value):
    """Replace every pixel of the stack (OME-TIFF) by ``value`` (0, NaN)."""
    def brk(folder: Path):
        s = tifffile.imread(folder / "stack.ome.tif")
        tifffile.imwrite(folder / "stack.ome.tif", np.full_like(s, value), ome=True,
                         photometric="minisblack", metadata={"axes": "TYX"})
    return brk


def no_particles(folder: Path):
    """A stack with nothing in it but a smooth illumination gradient, and no masks."""
    s = tifffile.imread(folder / "stack.ome.tif")
    ramp = np.linspace(100, 101, s.shape[2], dtype=np.float32)[None, None, :]
    tifffile.imwrite(folder / "stack.ome.tif", np.broadcast_to(ramp, s.shape).copy(), ome=True,
                     photometric="minisblack", metadata={"axes": "TYX"})
    (folder / "masks.tif").unlink()


def zarr_never_written(folder: Path):
    """The stack as a zarr array of the right shape whose chunks were never written."""
    import zarr

    s = tifffile.imread(folder / "stack.ome.tif")
    (folder / "stack.ome.tif").unlink()
    zarr.create_array(store=str(folder / "stack.zarr"), shape=s.shape, chunks=(2, *s.shape[1:]),
                      dtype=s.dtype, attributes={"pixel_nm": 65.0})
    set_meta(stack="stack.zarr")(folder)


def zarr_tail_unwritten(folder: Path):
    """A zarr stack whose last chunks were never written (a copy killed half-way)."""
    import zarr

    s = tifffile.imread(folder / "stack.ome.tif")
    (folder / "stack.ome.tif").unlink()
    arr = zarr.create_array(store=str(folder / "stack.zarr"), shape=s.shape,
                            chunks=(2, *s.shape[1:]), dtype=s.dtype)
    arr[:4] = s[:4]
    set_meta(stack="stack.zarr")(folder)


def shift_echem_clock(seconds: float):
    def brk(folder: Path):
        df = pd.read_csv(folder / "echem.csv")
        df["time_s"] += seconds
        df.to_csv(folder / "echem.csv", index=False)
    return brk


def nan_capacity(rows):
    def brk(folder: Path):
        df = pd.read_csv(folder / "echem.csv")
        df.loc[rows, "capacity_mAh_g"] = np.nan
        df.to_csv(folder / "echem.csv", index=False)
    return brk


def chain(*breakers):
    def brk(folder: Path):
        for b in breakers:
            b(folder)
    return brk


#: (id, breaker, words the error message must hold) for a dataset folder read and analysed:
#: every one must be refused with a message naming the file / field and what was expected.
FOLDER_CASES = [
    ("pixel_nm true", set_meta(pixel_nm=True), ["metadata.json", "pixel_nm", "boolean"]),
    ("pixel_nm text", set_meta(pixel_nm="65"), ["metadata.json", "pixel_nm", "text"]),
    ("pixel_nm 1e300", set_meta(pixel_nm=1e300), ["metadata.json", "pixel_nm", "[1, 100000] nm"]),
    ("pixel_nm tiny", set_meta(pixel_nm=1e-9), ["metadata.json", "pixel_nm", "[1, 100000] nm"]),
    ("pixel_nm zero", set_meta(pixel_nm=0), ["metadata.json", "pixel_nm", "positive"]),
    ("pixel_nm negative", set_meta(pixel_nm=-65), ["metadata.json", "pixel_nm"]),
    ("pixel_nm null", set_meta(pixel_nm=None), ["metadata.json", "pixel_nm", "null"]),
    ("pixel_nm list", set_meta(pixel_nm=[65]), ["metadata.json", "pixel_nm"]),
    ("pixel_nm NaN", write_meta_text('{"format": "asymflux-dataset", "version": 1, '
                                     '"pixel_nm": NaN, "stack": "stack.ome.tif", '
                                     '"material": "m", "ageing": "a", "rate_mA_g": 1, '
                                     '"cell": "c"}'), ["metadata.json", "pixel_nm", "finite"]),
    ("pixel_nm Infinity", write_meta_text('{"format": "asymflux-dataset", "version": 1, '
                                          '"pixel_nm": Infinity, "stack": "stack.ome.tif", '
                                          '"material": "m", "ageing": "a", "rate_mA_g": 1, '
                                          '"cell": "c"}'), ["metadata.json", "pixel_nm"]),
    ("rate_mA_g true", set_meta(rate_mA_g=True), ["metadata.json", "rate_mA_g", "boolean"]),
    ("rate_mA_g text", set_meta(rate_mA_g="100"), ["metadata.json", "rate_mA_g", "text"]),
    ("rate_mA_g negative", set_meta(rate_mA_g=-100), ["metadata.json", "rate_mA_g", "mA/g"]),
    ("active_mass_mg false", set_meta(active_mass_mg=False),
     ["metadata.json", "active_mass_mg", "boolean"]),
    ("active_mass_mg zero", set_meta(active_mass_mg=0), ["metadata.json", "active_mass_mg"]),
    ("version true", set_meta(version=True), ["metadata.json", "version"]),
    ("version text", set_meta(version="1"), ["metadata.json", "version"]),
    ("format wrong", set_meta(format="other"), ["metadata.json", "format"]),
    ("stack a number", set_meta(stack=5), ["metadata.json", "stack"]),
    ("stack elsewhere", set_meta(stack="../x.tif"), ["metadata.json", "not found"]),
    ("material a list", set_meta(material=["NMC"]), ["metadata.json", "material", "text"]),
    ("ageing true", set_meta(ageing=True), ["metadata.json", "ageing", "text"]),
    ("synthetic text", set_meta(synthetic="yes"), ["metadata.json", "synthetic"]),
    ("metadata empty", write_meta_text(""), ["metadata.json", "JSON"]),
    ("metadata truncated", truncate("metadata.json"), ["metadata.json", "JSON"]),
    ("metadata a list", write_meta_text("[1, 2]"), ["metadata.json", "JSON object"]),
    ("metadata missing", remove("metadata.json"), ["metadata.json", "missing"]),
    ("metadata lacks pixel_nm", write_meta_text('{"format": "asymflux-dataset", "version": 1}'),
     ["metadata.json", "missing", "pixel_nm"]),
    ("echem.csv decimal comma ;", decimal_comma("echem.csv"),
     ["echem.csv", "time_s", "';'", "decimal"]),
    ("echem.csv decimal comma quoted", decimal_comma("echem.csv", sep=","),
     ["echem.csv", "'time_s'", "decimal comma", "decimal=','"]),
    ("frames.csv decimal comma ;", decimal_comma("frames.csv"), ["frames.csv", "';'", "decimal"]),
    ("frames.csv decimal comma quoted", decimal_comma("frames.csv", sep=","),
     ["frames.csv", "'time_s'", "decimal comma"]),
    ("annotations.csv decimal comma", chain(
        write_text("annotations.csv", "particle_id,class\n1,symmetric\n"),
        decimal_comma("annotations.csv")), ["annotations.csv", "';'", "decimal"]),
    ("annotations.csv quoted decimal", write_text(
        "annotations.csv", 'particle_id,class\n"1,0",symmetric\n'),
     ["annotations.csv", "'particle_id'", "decimal comma"]),
    ("annotations.csv text id", write_text("annotations.csv", "particle_id,class\none,x\n"),
     ["annotations.csv", "'particle_id'", "numbers"]),
    ("echem.csv text cell", set_cell("echem.csv", 3, "voltage_V", "high"),
     ["echem.csv", "'voltage_V'", "numbers"]),
    ("frames.csv text time", set_cell("frames.csv", 2, "time_s", "soon"),
     ["frames.csv", "'time_s'", "numbers"]),
    ("frames.csv NaN time", set_cell("frames.csv", 2, "time_s", np.nan),
     ["frames.csv", "NaN"]),
    ("frames.csv backwards", set_cell("frames.csv", 3, "time_s", 1.0),
     ["frames.csv", "backwards"]),
    ("frames.csv one row short", edit_csv("frames.csv", lambda df: df.iloc[:-1]),
     ["frames.csv", "frame times for"]),
    ("frames.csv empty", write_text("frames.csv", ""), ["frames.csv", "empty"]),
    ("frames.csv missing", remove("frames.csv"), ["frames.csv", "missing"]),
    ("echem.csv empty", write_text("echem.csv", ""), ["echem.csv", "empty"]),
    ("echem.csv no column", edit_csv("echem.csv", lambda df: df.drop(columns="time_s")),
     ["echem.csv", "time_s"]),
    ("echem.csv NaN time", set_cell("echem.csv", 2, "time_s", np.nan), ["echem.csv", "time_s"]),
    ("stack truncated", truncate("stack.ome.tif"), ["stack.ome.tif"]),
    ("stack empty file", write_text("stack.ome.tif", ""), ["stack.ome.tif"]),
    ("stack missing", remove("stack.ome.tif"), ["metadata.json", "stack.ome.tif", "not found"]),
    ("masks wrong shape", lambda f: tifffile.imwrite(f / "masks.tif", np.ones((10, 10), np.uint16)),
     ["masks.tif", "(10, 10)", "(40, 48)"]),
    ("masks float", lambda f: tifffile.imwrite(f / "masks.tif", np.full(SHAPE, 0.5, np.float32)),
     ["masks.tif", "integer"]),
    ("masks truncated", truncate("masks.tif", 0.3), ["masks.tif"]),
    ("masks all background", lambda f: tifffile.imwrite(f / "masks.tif", np.zeros(SHAPE, np.uint16)),
     ["no particle"]),
    ("stack all zero", stack_values(0.0), ["no image", "every pixel is 0"]),
    ("stack all NaN", stack_values(np.nan), ["no image", "NaN"]),
    ("zarr never written", zarr_never_written, ["no image", "never written"]),
    ("zarr tail unwritten", zarr_tail_unwritten, ["last frame", "no image"]),
    ("no particle in the stack", no_particles, ["no particle detected"]),
]
