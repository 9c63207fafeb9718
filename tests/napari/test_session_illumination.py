"""The curation dock's model (Qt-free) under a drifting illumination, and its results cache.

- A beam sliding 30 px across the field: every number the dock shows of a particle (its
  table, the quality panel's flags and ranges, the exported table) is ``asymflux
  analyze``'s on the same dataset folder, with the per-frame illumination correction
  (issue #26), and the dI movie is the corrected one.
- The results cache (issue #30): an analysis of unchanged data, curated labels and
  options is read back; an edited mask, or another option, is measured again.
"""

import numpy as np
import pandas as pd
import pytest

from asymflux.napari._session import CurationSession
from tests._helpers.microscope_movie import PIXEL_NM, clean_movie
from tests.napari._beam import beam_folder as _beam_folder


@pytest.fixture(scope="module")
def beam_movie(tmp_path_factory):
    """:func:`_beam_folder`: the beam sliding 30 px over 16 frames."""
    return _beam_folder(tmp_path_factory.mktemp("beam") / "beam")


@pytest.fixture(scope="module")
def beam_folder(beam_movie):
    """``(folder, particles, timeseries)``: :func:`beam_movie` and ``asymflux analyze``'s
    tables of it (read back from its CSV files)."""
    from asymflux.cli import main

    folder, root = beam_movie, beam_movie.parent
    out = root / "analyzed"
    assert main(["analyze", str(folder), "--out", str(out), "--no-cache"]) == 0
    return folder, pd.read_csv(out / "particles.csv"), pd.read_csv(out / "timeseries.csv")


def _session(folder, **choices):
    from asymflux.io import read_dataset

    s = CurationSession(choices=choices)
    s.load(read_dataset(folder, lazy=True).stack, path=folder)
    return s


def _as_csv(df):
    import io

    return pd.read_csv(io.StringIO(df.to_csv(index=False)))


@pytest.mark.slow  # the movie and its asymflux analyze: ~5 s of CPU
def test_the_docks_numbers_are_analyzes_under_a_sliding_beam(beam_folder):
    from asymflux.napari._quality import particle_quality

    folder, particles, ts = beam_folder
    s = _session(folder)
    s.cache = False
    particles = particles.set_index("particle_id")
    for pid in sorted(particles.index):
        with pytest.warns(Warning, match="spatial pattern changes"):  # said, as analyze says it
            table = s.particle_timeseries(pid)
        rows = ts[ts["particle_id"] == pid].reset_index(drop=True)
        cols = [c for c in rows.columns if c in table.columns]  # all but the cycler's
        assert len(cols) >= len(rows.columns) - 3
        pd.testing.assert_frame_equal(_as_csv(table)[cols], rows[cols], check_exact=False,
                                      rtol=1e-9)
        q = particle_quality(table)
        expected = particles.loc[pid]
        assert q["classification"] == expected["classification"]
        assert q["quality_flags"] == (expected["quality_flags"]
                                      if isinstance(expected["quality_flags"], str) else "")
        np.testing.assert_allclose(
            [q["asymmetry_score"], q["asymmetry_score_low"], q["asymmetry_score_high"]],
            [expected["max_offset_norm"], expected["asymmetry_score_low"],
             expected["asymmetry_score_high"]], rtol=1e-9, equal_nan=True)
    # the exported table: analyze's particles, joined with the curation
    _, table = s.export_table(folder.parent / "curated.csv")
    cols = ["particle_id", "classification", "max_offset_norm", "asymmetry_score_low",
            "asymmetry_score_high", "vanish_frame"]
    pd.testing.assert_frame_equal(_as_csv(table)[cols],
                                  particles.reset_index()[cols], rtol=1e-9)
    # without the correction the numbers move: it is what makes them equal
    off = _session(folder, illumination="off")
    off.cache = False
    assert off.analysis_options()["illumination"] is None
    pid = int(particles.index[0])
    raw = off.particle_timeseries(pid)
    corrected = ts[ts["particle_id"] == pid]["offset_nm"].to_numpy()
    assert not np.allclose(raw["offset_nm"], corrected, equal_nan=True)


def test_the_dI_movie_is_the_corrected_one(beam_movie):
    folder = beam_movie
    background = None
    spread = {}
    for choice in ("auto", "off"):
        s = _session(folder, illumination=choice)
        if background is None:
            from asymflux.analysis import particle_free_pixels

            background = particle_free_pixels(s.curation.labels)
        dI = np.asarray(s.movie()[0][-1])
        spread[choice] = float(np.nanstd(dI[background]))
    # the sliding beam leaves a slope of several % in the raw background's dI; divided out,
    # what is left is the carbon matrix's texture and noise
    assert spread["auto"] < 0.5 * spread["off"], spread


def test_a_second_analysis_reads_the_cache_an_edited_mask_does_not(tmp_path):
    folder = _beam_folder(tmp_path / "beam", n_frames=6)  # the beam has moved 10 px by frame 5
    s = _session(folder)
    s.cache = tmp_path / "cache"
    with pytest.warns(Warning):
        first = s.analyze_particle(1)
    assert s.cache_hit is False
    with pytest.warns(Warning, match="spatial pattern changes"):  # said again from the entry
        again = s.analyze_particle(1)
    assert s.cache_hit is True
    pd.testing.assert_frame_equal(again.timeseries, first.timeseries, check_exact=True)
    assert again.timeseries.attrs["warnings"] == first.timeseries.attrs["warnings"]
    # the same dataset opened again, curation unchanged (a class set: no number changes)
    s2 = _session(folder)
    s2.cache = s.cache
    s2.select(1)
    s2.set_class("asymmetric")
    s2.analyze_particle(1)
    assert s2.cache_hit is True
    # an edited mask: measured again; undone: the entry of the unedited labels
    painted = np.array(s2.curation.labels)
    rows, cols = np.nonzero(painted == 1)
    painted[rows.min(), cols.min():cols.max()] = 1  # one row of pixels more
    assert s2.take_labels(painted)
    edited = s2.analyze_particle(1)
    assert s2.cache_hit is False
    assert not edited.timeseries["mean_dI"].equals(first.timeseries["mean_dI"])
    s2.undo()
    s2.analyze_particle(1)
    assert s2.cache_hit is True
    # another option, another particle, crop: other entries
    s2.choices = {"normalize_illumination": "off"}
    s2.analyze_particle(1)
    assert s2.cache_hit is False
    s2.analyze_particle(2)
    assert s2.cache_hit is False
    s2.analyze_particle(1, crop=True)
    assert s2.cache_hit is False
    # the exported table too
    s2.export_table(tmp_path / "a.csv")
    assert s2.cache_hit is False
    s2.export_table(tmp_path / "b.csv")
    assert s2.cache_hit is True
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # off: nothing read nor written
    s2.cache = False
    s2.analyze_particle(1)
    assert s2.cache_hit is None


def test_a_stack_in_memory_is_not_cached():
    s = CurationSession()
    s.load(np.asarray(clean_movie()[0][:4], float), name="mem", pixel_nm=PIXEL_NM)
    s.take_labels(clean_movie()[1])
    s.analyze_particle(1)
    assert s.cache_inputs() is None and s.cache_hit is None


def test_a_stack_file_is_cached_by_its_file_and_pixels(tmp_path):
    stack, labels = clean_movie()
    stack = np.asarray(stack[:4])
    np.save(tmp_path / "movie.npy", stack)

    def analysed(frames):
        s = CurationSession()
        s.cache = tmp_path / "cache"
        s.load(frames, source=str(tmp_path / "movie.npy"), name="movie", pixel_nm=PIXEL_NM)
        s.take_labels(labels)
        s.analyze_particle(1)
        return s.cache_hit

    assert analysed(stack) is False
    assert analysed(np.load(tmp_path / "movie.npy", mmap_mode="r")) is True
    other = stack.copy()
    other[0, :8, :8] += 1  # another channel of the same file, say: another stack
    assert analysed(other) is False


def test_the_dI_movie_key_follows_the_dark_frames_content(beam_movie, tmp_path):
    """A dark frame rewritten under the same name is another dI movie (the dock does not
    keep showing the one made with the old file)."""
    import os

    dark = tmp_path / "dark.npy"
    shape = tuple(_session(beam_movie).stack.shape[1:])
    np.save(dark, np.zeros(shape))
    s = _session(beam_movie, dark=str(dark))
    options = s.differential_options()
    before = s.movie_key(options)
    assert s.movie_key(options) == before
    np.save(dark, np.full(shape, 5.0))
    os.utime(dark, ns=(1, 1))  # even with the old time put back, the content differs
    assert s.movie_key(options) != before
