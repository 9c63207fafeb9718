"""The Qt-free exports (asymflux.export): curated particles table, particle movies."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from asymflux import export
from asymflux.curation import Curation

NOTES = 'crack at 3 o\'clock, "see Fig. 2"\nsecond line ✓ , NA  '


def _particles(ids):
    return pd.DataFrame({"dataset": "x", "particle_id": ids, "classification": "symmetric",
                         "max_offset_norm": np.linspace(0.0, 0.2, len(ids))})


def _curation():
    lab = np.zeros((20, 30), np.int32)
    lab[2:8, 2:8] = 1
    lab[2:8, 12:20] = 2
    lab[10:18, 5:15] = 4
    cur = Curation(lab, who="tester")
    cur.set_class(1, "asymmetric")
    cur.accept(1)
    cur.set_notes(2, NOTES)
    cur.reject(4)
    return cur


def test_curated_particles_joins_classes_status_and_notes():
    cur = _curation()
    out = export.curated_particles(_particles([1, 2, 4]), cur)
    assert list(out.columns) == [*_particles([1]).columns, *export.CURATION_COLUMNS]
    assert out["particle_id"].tolist() == [1, 2, 4]
    assert out["classification"].tolist() == ["symmetric"] * 3  # the automatic one is kept
    assert out["class"].tolist() == ["asymmetric", "unclassified", "unclassified"]
    assert out["status"].tolist() == ["accepted", "pending", "rejected"]
    assert out.loc[1, "notes"] == NOTES and out.loc[0, "who"] == "tester" and out.loc[0, "when"]
    # also from the annotations table; a particle without a curation row gets the defaults;
    # a stale class column of the input is replaced
    stale = _particles([1, 2, 4, 9]).assign(**{"class": "exclude"})
    out = export.curated_particles(stale, cur.annotations())
    assert out["class"].tolist() == ["asymmetric", "unclassified", "unclassified", "unclassified"]
    assert out.loc[3, ["status", "notes", "who", "when"]].tolist() == ["pending", "", "", ""]
    with pytest.raises(ValueError, match="more than once"):
        export.curated_particles(_particles([1, 1]), cur)
    with pytest.raises(ValueError, match="no particle_id"):
        export.curated_particles(pd.DataFrame({"id": [1]}), cur)


def test_write_table_is_exact_and_atomic(tmp_path, monkeypatch):
    cur = _curation()
    table = export.curated_particles(_particles([1, 2, 4]), cur)
    path = tmp_path / "curated.csv"
    assert export.write_table(path, table) == path
    back = pd.read_csv(path, keep_default_na=False)
    assert back["notes"].tolist() == table["notes"].tolist()  # commas, quotes, newline, "NA"
    assert back["class"].tolist() == table["class"].tolist()
    before = path.read_bytes()

    # a failing write leaves the previous file and nothing else behind
    def boom(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(ValueError, match="table file .*disk full"):
        export.write_table(path, table.iloc[:1])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["curated.csv"]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="does not exist"):
        export.write_table(tmp_path / "missing" / "t.csv", table)
    with pytest.raises(ValueError, match="is a folder"):
        export.write_table(tmp_path, table)


def _movie(n=6, size=(9, 11)):
    rng = np.random.default_rng(0)
    dI = rng.normal(0, 0.02, (n, *size)).astype(np.float32)
    dI[:, 3:6, 4:8] += np.linspace(0, 0.3, n)[:, None, None]
    dI[0, 0, 0] = np.nan
    mask = np.zeros(size, bool)
    mask[2:7, 3:9] = True
    return dI, mask


def test_movie_frames_are_coloured_like_the_napari_layer():
    dI, mask = _movie()
    rgb = export.di_to_rgb(np.array([-1.0, 0.0, 1.0, 5.0, np.nan]), 1.0)
    assert rgb.dtype == np.uint8
    assert rgb[1].tolist() == [255, 255, 255]  # white at dI = 0
    assert rgb[2][0] > 2 * rgb[2][2] and rgb[0][2] > rgb[0][0]  # red > 0, blue < 0
    assert rgb[3].tolist() == rgb[2].tolist() and rgb[4].tolist() == [128, 128, 128]
    frames = export.movie_frames(dI, mask=mask, scale=4)
    assert frames.shape == (6, 36, 44, 3) and frames.dtype == np.uint8
    assert (frames[:, 2 * 4, 5 * 4] == (40, 40, 40)).all()  # the outline is drawn
    assert export.movie_frames(np.zeros((1, 30, 40))).shape == (1, 180, 240, 3)  # enlarged
    with pytest.raises(ValueError, match="mask shape"):
        export.movie_frames(dI, mask=mask[1:])


def test_gif_and_tiff_movies_read_back(tmp_path):
    import tifffile
    from PIL import Image

    dI, mask = _movie()
    gif = export.write_movie(tmp_path / "p.gif", dI, mask=mask, fps=4, scale=3)
    with Image.open(gif) as im:
        assert im.n_frames == 6 and im.size == (33, 27)
        assert im.info["duration"] == 250 and im.info["loop"] == 0
        im.seek(5)
        last = np.asarray(im.convert("RGB"))
    assert np.abs(last.astype(int) - export.movie_frames(dI, mask=mask, scale=3)[5]).max() < 40

    tif = export.write_movie(tmp_path / "p.tif", dI, pixel_nm=65.0, time_s=np.arange(6) * 30.0)
    with tifffile.TiffFile(tif) as t:
        np.testing.assert_array_equal(t.asarray(), dI)  # the values themselves, NaN kept
        assert t.imagej_metadata["finterval"] == 30.0
        x_res = t.pages[0].tags["XResolution"].value
        assert x_res[0] / x_res[1] == pytest.approx(1000 / 65, rel=1e-3)
    assert export.default_movie_suffix() in export.movie_suffixes()
    assert {".gif", ".tif"} <= set(export.movie_suffixes())


def test_movie_errors_name_the_file_and_leave_nothing(tmp_path):
    dI, _ = _movie()
    with pytest.raises(ValueError, match=r"p\.avi.*unknown format"):
        export.write_movie(tmp_path / "p.avi", dI)
    if ".mp4" not in export.movie_suffixes():
        with pytest.raises(ValueError, match="imageio-ffmpeg"):
            export.write_movie(tmp_path / "p.mp4", dI)
    with pytest.raises(ValueError, match="movie"):
        export.write_movie(tmp_path / "p.gif", dI[0])
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


@pytest.mark.skipif(".mp4" not in export.movie_suffixes(), reason="imageio-ffmpeg not installed")
def test_mp4_movie(tmp_path):  # pragma: no cover - needs imageio-ffmpeg
    import imageio.v2 as iio

    dI, mask = _movie()
    path = export.write_movie(tmp_path / "p.mp4", dI, mask=mask, scale=3)
    assert len(iio.mimread(path)) == 6


@pytest.mark.slow
def test_demo_particle_table_and_movie(tmp_path):
    """The curated table holds analyze's numbers; the movie is analyze_particle's crop."""
    from asymflux import datasets
    from asymflux.analysis import analyze_dataset, analyze_dataset_particle
    from asymflux.io import read_dataset

    folder = tmp_path / "fresh"
    shutil.copytree(datasets.path("fresh"), folder)
    ds = read_dataset(folder)
    cur = Curation.from_dataset(ds)
    cur.set_class(4, "asymmetric")
    table = export.analyze_curation(ds, cur)
    particles, _ = analyze_dataset(ds)
    pd.testing.assert_frame_equal(table[particles.columns], particles)
    assert table.set_index("particle_id").loc[4, "class"] == "asymmetric"
    written = pd.read_csv(export.write_table(folder / "curated.csv", table))
    assert written["particle_id"].tolist() == table["particle_id"].tolist()

    particle = analyze_dataset_particle(ds, 4, masks=cur.labels)
    tif = export.write_particle_movie(tmp_path / "p4.tif", particle)
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(tif), particle.crop.dI.astype(np.float32))
    assert os.path.getsize(export.write_particle_movie(tmp_path / "p4.gif", particle)) > 1000
