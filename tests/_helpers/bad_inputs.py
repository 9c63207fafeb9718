"""Bad inputs shared by tests/test_bad_inputs_api.py and tests/test_bad_inputs_cli.py (#15).

A small good dataset folder, and *breakers*: functions that damage a copy of it in one way
(a boolean pixel size, a decimal-comma CSV, an all-zero stack, ...). Each test copies the
good folder, breaks it, snapshots everything, runs the front end and checks the message,
and that nothing was written.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from asymflux import io
from asymflux._atomic import MARK, STAGING

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


# --------------------------------------------------------------------------- messages


#: Exception class names (Python's and libraries') a user must never see in a message about a
#: bad input: the front end words it (file, field, what was expected). Our own error classes
#: are allowed where a front end labels a message with them (the dashboards' alert).
_INTERNAL_NAME = re.compile(
    r"\b(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception)|BadZipFile|LargeZipFile)\b"
    r"|\b(?:zlib|struct|binascii)\.error\b")
_OWN_CLASSES = {"DatasetError", "DatasetSpecError", "DatasetTooLarge", "CurationError"}


def check_message(msg: str, words=(), *, allowed=_OWN_CLASSES) -> str:
    """Assert ``msg`` is one line holding every word, with no traceback text and no bare
    exception class name (other than ``allowed``). Returns it."""
    msg = str(msg)
    assert "\n" not in msg.strip(), f"more than one line: {msg!r}"
    assert "Traceback" not in msg and 'File "' not in msg, msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    names = {m.group(0).split(".")[-1] if "." in m.group(0) and not m.group(0).endswith(".error")
             else m.group(0) for m in _INTERNAL_NAME.finditer(msg)}
    bad = sorted(n for n in names if n not in allowed)
    assert not bad, f"exception class name(s) {bad} in {msg!r}"
    return msg


# --------------------------------------------------------------------------- more cases
# Used by the napari and dashboard tables (tests/test_bad_inputs_napari.py,
# tests/test_bad_inputs_dashboards.py).


def bad_json_value(text: str):
    """metadata.json with one field replaced by raw JSON text (NaN, 1e999, ...)."""
    def brk(folder: Path):
        meta = json.loads((folder / "metadata.json").read_text())
        meta["pixel_nm"] = "@@"
        (folder / "metadata.json").write_text(json.dumps(meta).replace('"@@"', text))
    return brk


def write_bytes(name: str, data: bytes):
    def brk(folder: Path):
        (folder / name).write_bytes(data)
    return brk


#: More broken dataset folders, refused by every front end the same way as FOLDER_CASES.
MORE_FOLDER_CASES = [
    ("pixel_nm 1e999", bad_json_value("1e999"), ["metadata.json", "pixel_nm"]),
    ("metadata binary", write_bytes("metadata.json", b"\xff\xfe\x00garbage\x80"),
     ["metadata.json"]),
    ("stack garbage bytes", write_bytes("stack.ome.tif", b"II*\x00garbage"), ["stack.ome.tif"]),
    ("masks garbage bytes", write_bytes("masks.tif", b"II*\x00garbage"), ["masks.tif"]),
    ("echem.csv binary", write_bytes("echem.csv", b"\x00\x01\x02\xff\xfe"), ["echem.csv"]),
    ("frames.csv header only", write_text("frames.csv", "time_s\n"), ["frames.csv"]),
]


def _stack() -> np.ndarray:
    return good_dataset().stack


def _ome(path: Path, data, axes="TYX", **kw):
    tifffile.imwrite(path, data, ome=True, metadata={"axes": axes}, **kw)


def _ome_truncated(path: Path):
    _ome(path, _stack())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _npy_truncated(path: Path):
    np.save(path, _stack())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zarr(path: Path, data=None, *, shape=None, attributes=None, write=True):
    import zarr

    data = _stack() if data is None and shape is None else data
    shape = shape or data.shape
    chunks = (2, *SHAPE) if shape == (N_FRAMES, *SHAPE) else "auto"
    arr = zarr.create_array(store=str(path), shape=shape, dtype="f4", chunks=chunks,
                            attributes=attributes or {})
    if write and data is not None:
        arr[...] = data
    return path


def _not_zarr(path: Path):
    path.mkdir()
    (path / "zarr.json").write_text("{garbage")


#: (id, file name, maker(path), words) of bare stack files a reader is given directly:
#: each refused with a message naming the file (and the field / what was expected).
STACK_FILE_CASES = [
    ("ome-tiff truncated", "s.ome.tif", _ome_truncated, ["s.ome.tif"]),
    ("ome-tiff empty", "s.ome.tif", lambda p: p.write_bytes(b""), ["s.ome.tif", "TIFF"]),
    ("ome-tiff garbage", "s.ome.tif", lambda p: p.write_bytes(b"II*\x00garbage"),
     ["s.ome.tif", "no image"]),
    ("ome-tiff single image", "s.ome.tif", lambda p: _ome(p, _stack()[0], axes="YX"),
     ["s.ome.tif", "(40, 48)"]),
    ("ome-tiff all zero", "s.ome.tif", lambda p: _ome(p, np.zeros_like(_stack())),
     ["s.ome.tif", "no image", "every pixel is 0"]),
    ("ome-tiff all NaN", "s.ome.tif", lambda p: _ome(p, np.full_like(_stack(), np.nan)),
     ["s.ome.tif", "no image", "NaN"]),
    ("npy truncated", "s.npy", _npy_truncated, ["s.npy", ".npy"]),
    ("npy garbage", "s.npy", lambda p: p.write_bytes(b"\x93NUMPY garbage"), ["s.npy", ".npy"]),
    ("npy 2-D", "s.npy", lambda p: np.save(p, _stack()[0]), ["s.npy", "(40, 48)", "stack"]),
    ("npy object", "s.npy", lambda p: np.save(p, np.array([[["a"]]], dtype=object)),
     ["s.npy"]),
    ("zarr not a zarr", "s.zarr", _not_zarr, ["s.zarr", "zarr"]),
    ("zarr empty folder", "s.zarr", lambda p: p.mkdir(), ["s.zarr", "zarr"]),
    ("zarr 2-D", "s.zarr", lambda p: _zarr(p, _stack()[0]), ["s.zarr", "(40, 48)"]),
    ("zarr never written", "s.zarr", lambda p: _zarr(p, shape=(N_FRAMES, *SHAPE), write=False),
     ["s.zarr", "no image", "never written"]),
    ("zarr pixel_nm true", "s.zarr", lambda p: _zarr(p, attributes={"pixel_nm": True}),
     ["s.zarr", "pixel_nm", "boolean"]),
    ("zarr pixel_nm huge", "s.zarr", lambda p: _zarr(p, attributes={"pixel_nm": 1e300}),
     ["s.zarr", "pixel_nm", "[1, 100000] nm"]),
    ("zarr interval negative", "s.zarr",
     lambda p: _zarr(p, attributes={"pixel_nm": 65, "frame_interval_s": -1}),
     ["s.zarr", "frame_interval_s"]),
]


def zip_folder(folder: Path, *, prefix=None) -> bytes:
    """The bytes of a zip of a dataset folder (members under ``prefix/``, default its name)."""
    import io as _io
    import zipfile

    prefix = folder.name if prefix is None else prefix
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{prefix}/{p.relative_to(folder)}")
    return buf.getvalue()


def _zip(members: dict, *, compression=None) -> bytes:
    import io as _io
    import zipfile

    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression or zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def _bomb(size=256 * 1024**2) -> bytes:
    """A small zip (~0.3 MB) of a dataset folder whose stack inflates to ``size`` bytes."""
    import io as _io
    import zipfile

    buf = _io.BytesIO()
    chunk = bytes(1 << 22)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("exp/metadata.json", '{"format": "asymflux-dataset", "version": 1}')
        with zf.open("exp/stack.ome.tif", "w", force_zip64=True) as f:
            for _ in range(size // len(chunk)):
                f.write(chunk)
    return buf.getvalue()


def _damaged(good: bytes) -> bytes:
    data = bytearray(good)
    i = data.find(b"metadata.json") + len(b"metadata.json") + 5
    data[i:i + 20] = bytes(20)
    return bytes(data)


#: (id, maker(good zip bytes) -> upload bytes, file name, words) of uploaded zips.
ZIP_CASES = [
    ("not a zip", lambda good: b"not a zip", "x.zip", ["x.zip", "not a zip file", "expected"]),
    ("empty upload", lambda good: b"", "x.zip", ["x.zip", "empty"]),
    ("not .zip", lambda good: good, "x.tar", ["x.tar", ".zip"]),
    ("truncated zip", lambda good: good[: len(good) // 2], "x.zip", ["x.zip"]),
    ("damaged member", _damaged, "damaged.zip", ["damaged.zip", "metadata.json"]),
    ("member outside", lambda good: _zip({"../evil/metadata.json": "{}"}), "evil.zip",
     ["evil.zip", "escapes"]),
    ("absolute member", lambda good: _zip({"/tmp/asymflux-evil/metadata.json": "{}"}),
     "abs.zip", ["abs.zip", "escapes"]),
    ("no dataset inside", lambda good: _zip({"notes.txt": "hello"}), "none.zip",
     ["none.zip", "metadata.json"]),
    ("zip bomb", lambda good: _bomb(), "bomb.zip", ["bomb.zip"]),
    ("bad dataset inside", lambda good: _zip({"exp/metadata.json": "{not json"}), "bad.zip",
     ["metadata.json", "JSON"]),
]


# --------------------------------------------------------------------------- a full disk (#28)


def full_disk(monkeypatch):
    """Every file opened for writing in asymflux's staging area writes to /dev/full: the
    first flush fails with ENOSPC, as on a full disk."""
    import builtins

    real = builtins.open

    def fake(file, mode="r", *args, **kwargs):
        if (isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax")
                and STAGING in os.fsdecode(os.fspath(file)).split(os.sep)):
            return real("/dev/full", "wb" if "b" in mode else "w", *args, **kwargs)
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake)


# --------------------------------------------------------------------------- look-alike leftovers (#28)


def plant(folder: Path, name: str = "run.npz") -> dict:
    """What asymflux must never delete: leftover-like files and folders a user (or another
    program) made in ``folder``, an hour old; returns {relative path: bytes} of each file."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        ".results.old-2024jan/notes.txt": b"my notes",
        ".results.old-2024jan/metadata.json": b"{}",
        ".thesis.20240101.tmp": b"chapter 3",
        f".{name}.tmp-a1b2c3": b"",  # a file named like an old temporary folder
        f".{name}.tmp-x1y2z3d4/keep.txt": b"kept",
        f".{name}.old-0123abcd/metadata.json": b'{"mine": 1}',
        f".{name}.ab12cd34.npz.tmp": b"partial?",
        f"{STAGING}/notes.txt": b"mine",
        f"{STAGING}/{name}.tmp-abcd1234.lock": b"",  # no mark: not asymflux's
        f"{STAGING}/{name}.tmp-abcd1234/data.bin": b"\x00\x01",
        f"{STAGING}/{name}.old-deadbeef.lock": b"asymflux temporary write?\n"
                                                 + f"{name}.old-deadbeef\n".encode(),
        f"{STAGING}/{name}.old-deadbeef/metadata.json": b"{}",
    }
    old = time.time() - 3600
    for rel, data in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for p in sorted(folder.rglob("*"), reverse=True):
        if p.name.startswith(".") or STAGING in p.parts:
            os.utime(p, (old, old))
    return files


def intact(folder: Path, files: dict) -> None:
    for rel, data in files.items():
        p = folder / rel
        assert p.is_file(), f"{p} was deleted"
        assert p.read_bytes() == data, f"{p} was changed"


def real_leftover(folder: Path, name: str = "run.npz") -> Path:
    """What a killed asymflux writer leaves: a staged entry and its marked lock file."""
    staging = folder / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    entry = staging / f"{name}.tmp-0f0f0f0f"
    entry.mkdir()
    (entry / "half.bin").write_bytes(b"\x00" * 10)
    (staging / f"{name}.tmp-0f0f0f0f.lock").write_bytes(MARK + entry.name.encode() + b"\n")
    return entry
