"""Live mode under a drifting illumination (a Gaussian beam sliding across the field): the
per-frame illumination correction of ``asymflux analyze`` is applied to every live frame,
and the final tables are ``asymflux analyze``'s."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asymflux import live
from tests._helpers.microscope_movie import PIXEL_NM, SHAPE, N, clean_movie

INTERVAL_S = 10.0


def _beam(c0, edge=0.6):
    """A Gaussian beam centred at (48, c0) whose farthest frame corner gets ``edge``."""
    rr, cc = np.indices(SHAPE)
    far = np.hypot(max(48, SHAPE[0] - 48), max(c0, SHAPE[1] - c0))
    s = far / np.sqrt(-2 * np.log(edge))
    return np.exp(-((rr - 48) ** 2 + (cc - c0) ** 2) / (2 * s ** 2))


@pytest.fixture(scope="module")
def moving_beam():
    """The quality tests' movie (two particles) lit by a beam sliding 30 px: uint16 counts."""
    stack, _ = clean_movie()
    beams = np.array([_beam(30 + 30 * k / (N - 1)) for k in range(N)])
    return np.round(stack * beams).astype(np.uint16)


def _as_csv(df):
    import io

    return pd.read_csv(io.StringIO(df.to_csv(index=False)))


def _watch(tmp_path, stack, **options):
    """Write ``stack`` frame by frame into movie.h5 and follow it; ``(live, final, rows
    after each update)``."""
    movie = tmp_path / "movie.h5"
    w = live.LiveWriter(movie, frame_shape=SHAPE, pixel_nm=PIXEL_NM,
                        frame_interval_s=INTERVAL_S)
    la = live.LiveAnalysis(movie, cache=tmp_path / "cache", **options)
    output = live.LiveOutput(tmp_path / "out", rewrite_s=1e9)  # whole rewrites: when needed
    remeasured = []
    try:
        for k in range(len(stack)):
            w.write_frame(stack[k], time_s=k * INTERVAL_S)
            up = la.update()
            rewrites = output.rewrites
            output.update(la, up)
            if up.remeasured:
                remeasured.append(k)
                assert len(up.rows) == len(la.timeseries)  # every row so far, again
                assert output.rewrites == rewrites + 1  # the output rewritten at once
            table = pd.read_csv(tmp_path / "out" / "timeseries.csv")
            pd.testing.assert_frame_equal(  # what a reader finds: the rows measured now
                table.sort_values(["particle_id", "frame"], ignore_index=True),
                _as_csv(la.timeseries))
        w.finish()
        final = la.finish()
    finally:
        w.close()
        la.close()
    return la, final, remeasured


@pytest.mark.slow  # the movie (3 s of CPU, shared) and two batch analyses
def test_live_frames_are_corrected_and_end_with_analyze_tables(tmp_path, moving_beam):
    from asymflux.analysis import analyze_path
    from asymflux.cli import main

    la, final, remeasured = _watch(tmp_path, moving_beam)
    # "auto" switched the correction on as the beam moved, and measured the earlier
    # frames again: the live rows are then the batch's, to the last bit
    assert la.illumination is True and remeasured and remeasured[0] > 0
    assert any("spatial pattern changes" in w for w in la.auto_warnings)
    assert all(v == 0.0 for v in final.max_abs_difference.values()), final.max_abs_difference
    # the final tables are asymflux analyze's of the finished file (measured afresh)
    out = tmp_path / "analyzed"
    assert main(["analyze", str(tmp_path / "movie.h5"), "--out", str(out), "--no-cache"]) == 0
    for name in ("particles", "timeseries"):
        pd.testing.assert_frame_equal(_as_csv(getattr(final, name)),
                                      pd.read_csv(out / f"{name}.csv"))
    assert any("spatial pattern changes" in w for w in final.particles.attrs["warnings"])
    # without the correction (both sides), the numbers differ: the correction is what
    # made them equal
    p_off, ts_off, _, _ = analyze_path(tmp_path / "movie.h5", cache=False, illumination=None)
    assert not np.allclose(ts_off["offset_nm"], final.timeseries["offset_nm"],
                           equal_nan=True)


def test_live_illumination_off_matches_analyze_off(tmp_path, moving_beam):
    from asymflux.analysis import analyze_path

    la, final, remeasured = _watch(tmp_path, moving_beam[:6], illumination=None,
                                   normalize=None)
    assert la.illumination is None and not remeasured
    assert all(v == 0.0 for v in final.max_abs_difference.values())
    p, ts, _, _ = analyze_path(tmp_path / "movie.h5", cache=False, illumination=None,
                               options={"normalize": None})
    pd.testing.assert_frame_equal(_as_csv(ts), _as_csv(final.timeseries))


def test_watch_takes_analyzes_camera_options(tmp_path, moving_beam):
    """``asymflux watch --illumination off --no-normalize-illumination --dark FILE`` ends
    with the tables of ``asymflux analyze`` with the same flags."""
    import json

    from asymflux.cli import main

    movie = tmp_path / "movie.h5"
    w = live.LiveWriter(movie, frame_shape=SHAPE, pixel_nm=PIXEL_NM,
                        frame_interval_s=INTERVAL_S)
    try:
        for k in range(6):
            w.write_frame(moving_beam[k], time_s=k * INTERVAL_S)
        w.finish()
    finally:
        w.close()
    np.save(tmp_path / "dark.npy", np.full(SHAPE, 20.0))
    flags = ["--illumination", "off", "--no-normalize-illumination", "--dark",
             str(tmp_path / "dark.npy")]
    assert main(["watch", str(movie), "--out", str(tmp_path / "watched"), "--poll-s", "0.01",
                 "--no-cache", "--quiet", *flags]) == 0
    assert main(["analyze", str(movie), "--out", str(tmp_path / "analyzed"), "--no-cache",
                 *flags]) == 0
    for name in ("particles", "timeseries"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "watched" / f"{name}.csv"),
                                      pd.read_csv(tmp_path / "analyzed" / f"{name}.csv"))
    status = json.loads((tmp_path / "watched" / "live.json").read_text())
    assert max(status["live_vs_batch_max_abs_difference"].values()) == 0.0
    with pytest.raises(SystemExit):  # argparse: a choice it does not know
        main(["watch", str(movie), "--illumination", "sometimes"])


def test_the_live_display_shows_corrected_frames(tmp_path, moving_beam):
    """The dI frames a live display shows (napari's Live switch, the dashboard's Live page:
    ``LiveFeed``) are corrected as the tables are: under the sliding beam the particle-free
    background of the last dI is flatter with the correction than without it."""
    from asymflux._live_feed import LiveFeed

    movie = tmp_path / "movie.h5"
    w = live.LiveWriter(movie, frame_shape=SHAPE, pixel_nm=PIXEL_NM, frame_interval_s=INTERVAL_S)
    try:
        for k in range(len(moving_beam)):
            w.write_frame(moving_beam[k], time_s=k * INTERVAL_S)
        w.finish()
    finally:
        w.close()
    spread = {}
    for illumination in (True, None):
        feed = LiveFeed(movie, cache=tmp_path / f"cache{illumination}", illumination=illumination,
                        normalize=None)
        try:
            snap = feed.step()
            while not snap.done:
                snap = feed.step()
            background = feed.live.labels == 0
            spread[illumination] = float(np.nanstd(snap.last_dI[background]))
        finally:
            feed.close()
    assert spread[True] < 0.6 * spread[None], spread  # the same frames before this: equal


def test_live_flags_a_duplicated_frame_as_the_batch_does(tmp_path):
    """A frame identical to the one before it is flagged ``duplicated_frame`` on that frame
    in the live rows, as in the batch's (each live chunk starts with the reference frame:
    the first frame is not a copy of it)."""
    stack, _ = clean_movie()
    stack = np.round(stack).astype(np.uint16)
    stack[6] = stack[5]
    la, final, _ = _watch(tmp_path, stack, illumination=None, normalize=None)
    ts = la.timeseries
    flagged = sorted(set(ts.loc[ts.quality_flags.str.contains("duplicated_frame"), "frame"]))
    assert flagged == [6]
    batch = final.timeseries
    assert sorted(set(batch.loc[batch.quality_flags.str.contains("duplicated_frame"),
                                "frame"])) == [6]
