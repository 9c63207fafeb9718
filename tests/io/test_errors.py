"""Bad input: a DatasetError naming the file and the problem, and nothing written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from asymflux.io import Dataset, DatasetError, read_dataset, read_tiff, write_dataset, write_masks
from tests._helpers.io_utils import make_dataset, snapshot


def expect_error(root, func, *args, names, **kwargs) -> str:
    """Call ``func``; it must raise DatasetError whose message holds every string in ``names``,
    and leave everything under ``root`` as it was."""
    before = snapshot(root)
    with pytest.raises(DatasetError) as e:
        func(*args, **kwargs)
    msg = str(e.value)
    for n in names:
        assert n in msg, f"{n!r} not in {msg!r}"
    assert snapshot(root) == before, "something was written"
    return msg


@pytest.fixture
def folder(tmp_path):
    return write_dataset(make_dataset(), tmp_path / "exp")


# ---------------------------------------------------------------- truncated TIFF


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
@pytest.mark.parametrize("ome", [True, False])
def test_truncated_tiff(tmp_path, fraction, ome):
    stack = np.random.default_rng(0).integers(0, 1000, (5, 64, 64)).astype(np.uint16)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, stack, ome=ome, photometric="minisblack", metadata={"axes": "TYX"})
    data = full.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: int(len(data) * fraction)])
    for lazy in (False, True):
        msg = expect_error(tmp_path, read_tiff, cut, lazy=lazy, names=["cut.tif"])
        assert "truncated" in msg or "corrupt" in msg or "not a readable" in msg
    expect_error(
        tmp_path, read_dataset, cut, pixel_nm=65.0, frame_interval_s=1.0, names=["cut.tif"]
    )


def test_truncated_stack_in_dataset_folder(folder):
    stack = folder / "stack.ome.tif"
    data = stack.read_bytes()
    stack.write_bytes(data[: len(data) // 2])
    msg = expect_error(folder.parent, read_dataset, folder, names=["stack.ome.tif"])
    assert "truncated" in msg or "corrupt" in msg


def test_garbage_tiff(tmp_path):
    (tmp_path / "junk.tif").write_bytes(b"this is not a tiff")
    expect_error(
        tmp_path, read_tiff, tmp_path / "junk.tif", names=["junk.tif", "not a readable TIFF"]
    )


# ---------------------------------------------------------------- 2-D image where a stack is expected


def test_2d_image_is_not_a_stack(tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((8, 9), np.uint16))
    tifffile.imwrite(tmp_path / "one.ome.tif", np.zeros((8, 9), np.uint16), ome=True)
    np.save(tmp_path / "one.npy", np.zeros((8, 9)))
    for name in ("one.tif", "one.ome.tif", "one.npy"):
        expect_error(
            tmp_path,
            read_dataset,
            tmp_path / name,
            pixel_nm=65.0,
            frame_interval_s=1.0,
            names=[name, "2-D image", "(time, row, col)"],
        )
    with pytest.raises(DatasetError, match="2-D image"):
        Dataset(stack=np.zeros((8, 9)), time_s=[0.0], pixel_nm=65.0)


# ---------------------------------------------------------------- frame times


def test_frame_count_differs_from_frames(tmp_path, folder):
    frames = folder / "frames.csv"
    pd.read_csv(frames).iloc[:-1].to_csv(frames, index=False)
    expect_error(tmp_path, read_dataset, folder, names=["frames.csv", "5 frame times for 6 frames"])
    ds = make_dataset()
    expect_error(
        tmp_path,
        read_dataset,
        tmp_path / "exp" / "stack.ome.tif",
        pixel_nm=65.0,
        time_s=[0, 1, 2],
        names=["time_s", "3 frame times for 6 frames"],
    )
    with pytest.raises(DatasetError, match="7 frame times for 6 frames"):
        Dataset(stack=ds.stack, time_s=np.arange(7.0), pixel_nm=65.0)
    ds.time_s = np.arange(5.0)  # reassigned after construction: caught at write time
    expect_error(
        tmp_path, write_dataset, ds, tmp_path / "new", names=["new", "5 frame times for 6 frames"]
    )


def test_time_going_backwards(tmp_path, folder):
    frames = folder / "frames.csv"
    df = pd.read_csv(frames)
    df.loc[3, "time_s"] = df.loc[1, "time_s"]
    df.to_csv(frames, index=False)
    expect_error(tmp_path, read_dataset, folder, names=["frames.csv", "backwards", "at frame 3 "])
    ds = make_dataset()
    with pytest.raises(DatasetError, match="backwards"):
        Dataset(stack=ds.stack, time_s=ds.time_s[::-1], pixel_nm=65.0)
    expect_error(
        tmp_path,
        read_dataset,
        folder / "stack.ome.tif",
        pixel_nm=65.0,
        time_s=[0, 1, 2, 3, 2, 5],
        names=["time_s", "backwards"],
    )


def test_echem_time_going_backwards(tmp_path, folder):
    echem = folder / "echem.csv"
    df = pd.read_csv(echem)
    df.loc[10, "time_s"] = -5.0
    df.to_csv(echem, index=False)
    expect_error(tmp_path, read_dataset, folder, names=["echem.csv", "backwards", "row 10"])
    ds = make_dataset()
    ds.echem = df
    expect_error(tmp_path, write_dataset, ds, tmp_path / "new", names=["new", "echem", "backwards"])


# ---------------------------------------------------------------- masks


def test_mask_shape_differs_from_stack(tmp_path, folder):
    ds = make_dataset()
    with pytest.raises(DatasetError, match=r"mask shape \(24, 31\) differs .* \(24, 32\)"):
        Dataset(stack=ds.stack, time_s=ds.time_s, pixel_nm=65.0, masks=np.zeros((24, 31), int))
    expect_error(
        tmp_path,
        write_masks,
        folder,
        np.zeros((32, 24), np.int32),
        names=["masks.tif", "(32, 24)", "(24, 32)"],
    )
    expect_error(
        tmp_path,
        write_masks,
        folder,
        np.zeros((24, 32), np.float32),
        names=["masks.tif", "integer"],
    )
    expect_error(
        tmp_path, write_masks, folder, -np.ones((24, 32), np.int32), names=["masks.tif", "negative"]
    )
    ds.masks = np.zeros((3, 24, 32), np.int32)  # reassigned: caught at write time
    expect_error(tmp_path, write_dataset, ds, tmp_path / "new", names=["new", "2-D label image"])
    tifffile.imwrite(folder / "masks.tif", np.zeros((10, 10), np.uint16))
    expect_error(tmp_path, read_dataset, folder, names=["masks.tif", "(10, 10)", "(24, 32)"])
    expect_error(
        tmp_path,
        write_masks,
        tmp_path,
        np.zeros((24, 32), np.int32),
        names=[str(tmp_path), "not an asymflux dataset folder"],
    )


# ---------------------------------------------------------------- metadata


def test_missing_metadata_fields(tmp_path, folder):
    ds = make_dataset()
    del ds.metadata["ageing"], ds.metadata["cell"]
    expect_error(
        tmp_path,
        write_dataset,
        ds,
        tmp_path / "new",
        names=["new", "missing metadata field", "ageing", "cell"],
    )
    meta_path = folder / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["material"], meta["pixel_nm"]
    meta_path.write_text(json.dumps(meta))
    expect_error(
        tmp_path,
        read_dataset,
        folder,
        names=["metadata.json", "missing metadata field", "material", "pixel_nm"],
    )
    meta_path.write_text("{not json")
    expect_error(tmp_path, read_dataset, folder, names=["metadata.json", "not valid JSON"])
    meta_path.write_text(json.dumps({**meta, "material": "x", "pixel_nm": 1.0, "version": 99}))
    expect_error(tmp_path, read_dataset, folder, names=["metadata.json", "version 99"])


def test_bare_stack_needs_pixel_size_and_times(tmp_path):
    tifffile.imwrite(
        tmp_path / "bare.tif", np.zeros((4, 8, 9), np.uint16), photometric="minisblack"
    )
    expect_error(tmp_path, read_dataset, tmp_path / "bare.tif", names=["bare.tif", "pixel_nm="])
    expect_error(
        tmp_path,
        read_dataset,
        tmp_path / "bare.tif",
        pixel_nm=65.0,
        names=["bare.tif", "frame_interval_s="],
    )
    ds = read_dataset(tmp_path / "bare.tif", pixel_nm=65.0, frame_interval_s=0.5)
    np.testing.assert_array_equal(ds.time_s, [0.0, 0.5, 1.0, 1.5])
    expect_error(
        tmp_path,
        read_dataset,
        tmp_path / "bare.tif",
        pixel_nm=-1,
        frame_interval_s=0.5,
        names=["pixel_nm", "positive"],
    )


def test_dataset_folder_rejects_bare_stack_arguments(tmp_path, folder):
    expect_error(
        tmp_path, read_dataset, folder, pixel_nm=10.0, names=["exp", "pixel_nm=", "bare stacks"]
    )


def test_missing_frames_and_stack_files(tmp_path, folder):
    (folder / "frames.csv").unlink()
    expect_error(tmp_path, read_dataset, folder, names=["frames.csv", "missing"])


def test_bad_annotations(tmp_path, folder):
    from asymflux.io import write_annotations

    expect_error(
        tmp_path,
        write_annotations,
        folder,
        pd.DataFrame({"particle_id": [1]}),
        names=["annotations.csv", "class"],
    )
    expect_error(
        tmp_path,
        write_annotations,
        folder,
        pd.DataFrame({"particle_id": [1.5], "class": ["x"]}),
        names=["annotations.csv", "particle_id", "integers"],
    )


def test_read_masks_tiff_npy_and_bad_files(tmp_path):
    from asymflux import io

    labels = np.zeros((6, 7), np.uint16)
    labels[1:3, 2:5] = 3
    tifffile.imwrite(tmp_path / "m.tif", labels[None])  # a singleton axis is dropped
    np.save(tmp_path / "m.npy", labels)
    np.testing.assert_array_equal(io.read_masks(tmp_path / "m.tif"), labels)
    np.testing.assert_array_equal(io.read_masks(tmp_path / "m.npy"), labels)
    np.save(tmp_path / "stack.npy", np.zeros((2, 6, 7)))
    with pytest.raises(io.DatasetError, match=r"stack\.npy.*2-D"):
        io.read_masks(tmp_path / "stack.npy")
    (tmp_path / "m.png").write_bytes(b"not an image")
    with pytest.raises(io.DatasetError, match=r"m\.png.*\.tif, \.tiff or \.npy"):
        io.read_masks(tmp_path / "m.png")
    with pytest.raises(io.DatasetError, match="does not exist"):
        io.read_masks(tmp_path / "missing.tif")
