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
