"""The cohort page and ``asymflux cohort`` open ``asymflux analyze``'s results folders (their
tables, not analysed again)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from asymflux import io as aio  # noqa: E402
from asymflux.cli import main  # noqa: E402
from asymflux.views import CohortBrowser  # noqa: E402
from asymflux.views import _compute as C  # noqa: E402


def _dataset(name, ageing, offsets):
    """Particles side by side, each a disk whose unchanged core (dI = 0) sits ``offset`` px
    right of its centre in a delithiated disk (dI = 0.2); 6 frames."""
    shape, r, n = (48, 48 * len(offsets)), 16, 6
    rr, cc = np.indices(shape)
    i0 = np.full(shape, 0.5)
    stack = np.repeat(i0[None], n, axis=0)
    labels = np.zeros(shape, np.int32)
    for k, off in enumerate(offsets):
        c = (24, 24 + 48 * k)
        part = np.hypot(rr - c[0], cc - c[1]) <= r
        labels[part] = k + 1
        for f in range(n):
            core_r = r * (1 - f / (n - 1))
            core = np.hypot(rr - c[0], cc - c[1] - off * f / (n - 1)) <= core_r
            stack[f][part] = np.where(core[part] | (f == 0), 1.0, 1.2)
    t = np.arange(n) * 60.0
    echem = pd.DataFrame({"time_s": t, "voltage_V": 3.8, "current_mA": 0.01,
                          "capacity_mAh_g": np.linspace(0, 50, n)})
    return aio.Dataset(stack=stack.astype(np.float32), time_s=t, pixel_nm=65.0, echem=echem,
                       masks=labels, metadata={"name": name, "ageing": ageing,
                                               "material": "NMC88", "rate_mA_g": 100.0,
                                               "cell": "optical half-cell vs Li"})


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """``root/fresh`` and ``root/aged``: analyze outputs of 2 and 1 datasets."""
    root = tmp_path_factory.mktemp("results")
    data = tmp_path_factory.mktemp("data")
    specs = {"fresh": [("f1", [0, 0]), ("f2", [8, 0])], "aged": [("a1", [8, 8, 0])]}
    for ageing, sets in specs.items():
        paths = []
        for name, offsets in sets:
            paths.append(data / name)
            aio.write_dataset(_dataset(name, ageing, offsets), paths[-1])
        # one dataset per run: in-process (no local cluster), then the two tables joined
        outs = []
        for p in paths:
            outs.append(root / f"{ageing}-{p.name}")
            assert main(["analyze", str(p), "--out", str(outs[-1])]) == 0
        if len(outs) > 1:
            joined = root / ageing
            tables = {s: pd.concat([pd.read_csv(o / f"{s}.csv") for o in outs])
                      for s in ("particles", "timeseries")}
            joined.mkdir()
            for s, t in tables.items():
                t.to_csv(joined / f"{s}.csv", index=False)
        else:
            outs[0].rename(root / ageing)
        for o in outs:
            if o.exists():
                import shutil

                shutil.rmtree(o)
    return root


def test_cli_cohort_reads_a_folder_of_results(results, tmp_path):
    by_folder, by_each = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["cohort", str(results), "--out", str(by_folder)]) == 0
    assert main(["cohort", str(results / "aged"), str(results / "fresh"),
                 "--out", str(by_each)]) == 0
    a, b = pd.read_csv(by_folder), pd.read_csv(by_each)
    pd.testing.assert_frame_equal(a, b)
    assert dict(zip(a.ageing, a.n_particles, strict=True)) == {"aged": 3, "fresh": 4}
    assert dict(zip(a.ageing, a.n_asymmetric, strict=True)) == {"aged": 2, "fresh": 1}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["cohort", str(empty), "--out", str(tmp_path / "c.csv")]) == 2


def test_cohort_page_opens_results_folders(results, tmp_path):
    assert C.dataset_specs(str(results)) == [f"{results / 'aged'}#a1", f"{results / 'fresh'}#f1",
                                             f"{results / 'fresh'}#f2"]
    view = CohortBrowser(datasets=str(results))
    view.load()
    assert not view.errors, view.errors
    main(["cohort", str(results), "--out", str(tmp_path / "c.csv")])
    cli = pd.read_csv(tmp_path / "c.csv").set_index("ageing").sort_index()
    page = view.stats.set_index("ageing").sort_index()
    pd.testing.assert_frame_equal(page[cli.columns], cli, check_dtype=False)
    # a particle: its d(capacity) from timeseries.csv; the movie is not in the folder
    view.particle_select.value = f"{results / 'aged'}#a1|1"
    movie = view.particle_movie()
    ts = pd.read_csv(results / "aged" / "timeseries.csv")
    np.testing.assert_allclose(movie.timeseries["offset_nm"],
                               ts[ts.particle_id == 1]["offset_nm"])
    assert movie.dI.size == 0 and view.player.end == len(ts[ts.particle_id == 1]) - 1
    hv.extension("bokeh")
    view._as_row(view._particle_plot(view.particle)).get_root()
    data, name = view.particle_png("d_capacity")
    assert data.startswith(b"\x89PNG") and name.endswith("_d_capacity.png")
    with pytest.raises(ValueError, match="no movie"):
        view.particle_png("frame")
    csv = pd.read_csv(io.BytesIO(view.downloads["particles.csv"].callback().read()))
    assert len(csv) == 7
    # one results folder, typed with its dataset
    one = CohortBrowser(datasets=f"{results / 'fresh'}#f2")
    one.load()
    assert not one.errors and int(one.stats["n_particles"].sum()) == 2
    bad = CohortBrowser(datasets=f"{results / 'fresh'}#nope")
    bad.load()
    assert bad.errors and "nope" in bad.errors[0]


def test_a_multi_cycle_results_folder_counts_each_particle_once(results, tmp_path):
    """Rows per particle and half-cycle (a movie over several half-cycles): the page and the
    CLI count each particle once, on its first charge half-cycle."""
    aged = pd.read_csv(results / "aged" / "particles.csv")
    flipped = aged.assign(classification=aged["classification"].map(
        {"asymmetric": "symmetric", "symmetric": "asymmetric"}))
    rows = pd.concat([flipped.assign(half_cycle=0, direction="discharge"),
                      aged.assign(half_cycle=1, direction="charge")])
    cycled = tmp_path / "cycled"
    cycled.mkdir()
    rows.sort_values(["particle_id", "half_cycle"]).to_csv(cycled / "particles.csv",
                                                           index=False)
    pd.read_csv(results / "aged" / "timeseries.csv").to_csv(cycled / "timeseries.csv",
                                                             index=False)
    assert main(["cohort", str(cycled), "--out", str(tmp_path / "c.csv")]) == 0
    cli = pd.read_csv(tmp_path / "c.csv")
    assert int(cli["n_particles"].iloc[0]) == 3 and int(cli["n_asymmetric"].iloc[0]) == 2
    view = CohortBrowser(datasets=str(cycled))
    view.load()
    assert not view.errors, view.errors
    assert int(view.stats["n_asymmetric"].iloc[0]) == 2
    assert len(view.particle_select.options) == 3 and view.summary.object.startswith("3 ")


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    """A dataset whose particle 2 has a clipped patch from frame 3 (``saturated``, with and
    without d) and both particles' last core too small (``core_too_small``), and what
    ``asymflux analyze`` writes for it."""
    root = tmp_path_factory.mktemp("flagged")
    ds = _dataset("q1", "aged", [8, 0])
    stack = np.round(ds.stack * 20000).astype(np.uint16)
    stack[3:, 20:24, 70:74] = np.iinfo(np.uint16).max  # the camera's clip level
    ds = aio.Dataset(stack=stack, time_s=ds.time_s, pixel_nm=ds.pixel_nm, echem=ds.echem,
                     masks=ds.masks, metadata=ds.metadata)
    aio.write_dataset(ds, root / "q1")
    assert main(["analyze", str(root / "q1"), "--out", str(root / "out")]) == 0
    return root / "q1", root / "out"


@pytest.mark.slow
def test_the_flags_and_confidence_the_pages_show_are_the_cli_numbers(flagged, monkeypatch):
    """"A number a GUI shows must be the number the CLI writes for the same input": the
    cohort page's particle table (classification, its score's range, the flags), the chosen
    particle's line, the band and the flagged frames of its d(capacity), the line under the
    movie; and the model explorer's line under its particle selector."""
    from asymflux import plots
    from asymflux.views import ModelExplorer
    from asymflux.views import _flags as F

    folder, out = flagged
    cli_p = pd.read_csv(out / "particles.csv", keep_default_na=False, na_values=[""])
    cli_t = pd.read_csv(out / "timeseries.csv", keep_default_na=False, na_values=[""])
    assert "saturated:3" in cli_p.set_index("particle_id").loc[2, "quality_flags"]
    view = CohortBrowser(datasets=str(folder))
    view.load()
    assert not view.errors, view.errors
    view.__panel__()
    table = view.particle_table.value.set_index("particle_id").sort_index()
    cli = cli_p.set_index("particle_id").sort_index()
    for c in ("asymmetry_score", "asymmetry_score_low", "asymmetry_score_high",
              "flagged_fraction"):
        np.testing.assert_allclose(table[c].to_numpy(float), cli[c].to_numpy(float),
                                   rtol=1e-12, equal_nan=True, err_msg=c)
        assert view.particle_table.formatters[c].format == F.SCORE_FORMAT
    for c in ("classification", "quality_flags"):
        assert list(table[c]) == list(cli[c].fillna("")), c
    # the flags raised are explained beside the table (the analysis's own words)
    from asymflux.analysis import QUALITY_FLAGS

    assert QUALITY_FLAGS["saturated"] in view.flags_legend.object
    # particle 2, chosen by a click on its row
    view.particle_table.selection = [int(np.flatnonzero(
        view.particle_table.value["particle_id"].to_numpy() == 2)[0])]
    assert view.particle == (str(folder), 2)
    row = cli.loc[2]
    info = view.particle_info.object
    assert f"**particle 2: {row.classification}**" in info
    assert all(f"{row[c]:.3f}" in info for c in ("asymmetry_score", "asymmetry_score_low",
                                                 "asymmetry_score_high"))
    assert "saturated on 3 frames" in info
    ts = cli_t[cli_t.particle_id == 2].sort_values("frame")
    # its d(capacity) as the page draws it: the band is d_nm_low..d_nm_high, the crosses
    # the flagged frames with a d, the triangles (at 0) the flagged ones without
    hv.extension("bokeh")
    movie = view.particle_movie()
    fig = hv.render(view._offset_plot(movie, "q1", 2), backend="bokeh")
    band, line, _dots, with_d, without_d = (r.data_source.data for r in fig.renderers)
    x, y = plots.band_xy(ts["capacity_mAh_g"], ts["d_nm_low"], ts["d_nm_high"])
    np.testing.assert_allclose(band["x"], x, equal_nan=True)
    np.testing.assert_allclose(band["y"], y, equal_nan=True)
    np.testing.assert_allclose(line["offset_nm"], ts["offset_nm"], equal_nan=True)
    flags = ts["quality_flags"].fillna("")
    has_d = ts["offset_nm"].notna()
    flags = flags.where(has_d | (ts["unreacted_fraction"] > 0), "")  # d lost with a core
    assert (flags[~has_d] != "").any() and (flags[has_d] != "").any()
    np.testing.assert_allclose(with_d["offset_nm"], ts.loc[(flags != "") & has_d, "offset_nm"])
    assert list(with_d["quality_flags"]) == list(flags[(flags != "") & has_d])
    assert list(without_d["quality_flags"]) == list(flags[(flags != "") & ~has_d])
    assert list(without_d["capacity_mAh_g"]) == list(ts.loc[(flags != "") & ~has_d,
                                                            "capacity_mAh_g"])
    # the line under the movie at a saturated frame with a d: its d, range and flags
    f = int(ts.loc[(flags != "") & has_d, "frame"].iloc[0])
    view.player.value = f
    r = ts[ts.frame == f].iloc[0]
    line = view.frame_info.object
    assert f"**frame {f}**" in line and "**saturated**" in line
    assert all(f"{r[c]:.1f}" in line for c in ("offset_nm", "d_nm_low", "d_nm_high"))
    # the explorer's line under its particle selector: the same numbers (no simulation)
    from asymflux.views import _pool as P

    monkeypatch.setattr(P, "prefetch", lambda *a, **kw: {})
    monkeypatch.setattr(ModelExplorer, "_publish", lambda self, keys: None)
    explorer = ModelExplorer(dataset=str(folder), particle_id=2)
    assert explorer.particle_id == 2
    shown = explorer._particle_quality.object
    assert f"**particle 2: {row.classification}**" in shown and "saturated on 3" in shown
    assert f"{row.asymmetry_score_low:.3f} to {row.asymmetry_score_high:.3f}" in shown


def test_the_clock_offset_line_stays_one_line():
    from asymflux.analysis import TimeOffset

    same = {f"d{i}": TimeOffset() for i in range(15)}
    text = CohortBrowser.offset_text(same)
    assert "\n" not in text and text.count("none given") == 1 and "15 datasets" in text
    assert CohortBrowser.offset_table(same).count("\n") == 15 + 1  # a header, a line each
    varied = {f"d{i}": TimeOffset(offset_s=10.0 * i, uncertainty_s=1.0, method="optical-rate")
              for i in range(15)}
    text = CohortBrowser.offset_text(varied)
    assert "0 to 140 s" in text and "optical-rate" not in text
    assert "| d14 | 140 ± 1 s (optical-rate) |" in CohortBrowser.offset_table(varied)
