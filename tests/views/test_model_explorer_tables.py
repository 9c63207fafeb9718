"""The user's material in the model explorer: an OCV and a D(θ) table uploaded (CSV, as
``asymflux simulate / rate-sweep --ocv FILE.csv --diffusivity FILE.csv``), the same numbers
as the command line, a bad file's message on the page, the built-in set back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")

from asymflux.cli import main  # noqa: E402
from asymflux.model.parameters import ocv_nmc811_chen2020  # noqa: E402
from asymflux.views import ModelExplorer  # noqa: E402
from asymflux.views import _compute as C  # noqa: E402

#: the kinetic setting compared with the command line (the OCV matters there: it pushes
#: current back onto the film)
RATE, FRACTION, ANGLE, FILM = 200.0, 0.3, 150.0, 0.2


def _ocv_table(path):
    """A user's OCV: Chen 2020's NMC811 curve (steeper than the built-in one near full
    lithiation), 81 points."""
    theta = np.linspace(0.2, 1.0, 81)
    pd.DataFrame({"theta": theta, "voltage_V": ocv_nmc811_chen2020(theta)}).to_csv(
        path, index=False)
    return path


def _diffusivity_table(path):
    """A user's D(θ): the built-in curve halved, 101 points (a GITT table, say)."""
    from asymflux import model

    theta = np.linspace(0.0, 1.0, 101)
    d = model.nmc88_lun2025()["Diffusivity [m2.s-1]"](theta) / 2
    pd.DataFrame({"theta": theta, "diffusivity_m2_s": d}).to_csv(path, index=False)
    return path


def _upload(view, kind, data: bytes, filename: str):
    """What the browser's file field does: the file's name and bytes at once."""
    view.table_uploads[kind].param.update(filename=filename, value=data)


@pytest.fixture(scope="module")
def view():
    from asymflux.views import _pool as P

    # the runs in this process (no worker processes to start); no dataset (its alert
    # aside): the model's plots only
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "_pool", lambda: None)
        yield ModelExplorer(dataset="", surface_model="kinetic", rate_mA_g=RATE,
                            blocked_fraction=FRACTION, angle_deg=ANGLE,
                            film_resistance_ohm_m2=FILM)


@pytest.mark.slow  # the page, its runs with the user's OCV and the two commands: ~15 s
def test_uploaded_tables_give_the_numbers_of_the_cli(view, tmp_path):
    """GUI = CLI: with an uploaded OCV and D(θ) table the page's V(t), θ maps and Fig. 5b
    (the current setting's curve and star) are what ``asymflux simulate --ocv --diffusivity``
    and ``asymflux rate-sweep --ocv --diffusivity`` give for the same settings, and not the
    built-in set's."""
    csv = _ocv_table(tmp_path / "my_ocv.csv")
    d_csv = _diffusivity_table(tmp_path / "my_gitt.csv")
    before = view.current_li_extracted()
    _upload(view, "ocv", csv.read_bytes(), csv.name)
    _upload(view, "diffusivity", d_csv.read_bytes(), d_csv.name)
    assert view.settings.ocv_table.name == "my_ocv.csv"
    assert view.settings.diffusivity_table.name == "my_gitt.csv"
    # named where the runs are shown: the heading of the θ maps, Fig. 5b's title, the panel
    for text in (view.maps_title.object, view._rate_material.text):
        assert "OCV my_ocv.csv, D(θ) my_gitt.csv" in text
    assert "my_ocv.csv (81 points" in view.material_info.object
    assert "my_gitt.csv (101 points" in view.material_info.object
    # and in what a download writes: the figure's settings line, the file's name
    assert "OCV my_ocv.csv, D(θ) my_gitt.csv" in view.settings_text()
    assert view._stem().endswith("_ocv-my_ocv_D-my_gitt")
    np.testing.assert_allclose(view._material_src.data["voltage_V"],
                               ocv_nmc811_chen2020(view._material_src.data["theta"]), atol=1e-3)
    tables = ["--ocv", str(csv), "--diffusivity", str(d_csv)]

    # asymflux simulate --ocv: V(t) and the θ maps of the maps' run
    minutes = C.run_minutes()
    out = tmp_path / "cli.npz"
    assert main(["simulate", "--out", str(out), *tables,
                 "--film", f"{ANGLE:g}:{FRACTION:g}:{FILM!r}", "--rate-mA-g", repr(RATE),
                 "--pixel-nm", repr(view.settings.pixel_nm),
                 "--minutes", ",".join(repr(m) for m in minutes),
                 "--mesh", "x".join(str(n) for n in C.MAPS_MESH)]) == 0
    cli = np.load(out)
    page_t = np.asarray(view._flux_src.data["minutes"])
    page_v = np.asarray(view._v_src.data["voltage_V"])
    at = np.searchsorted(page_t, np.asarray(minutes) - 1e-9)
    np.testing.assert_allclose(page_t[at], minutes, rtol=0, atol=1e-9)
    np.testing.assert_allclose(page_v[at], cli["voltage_V"], rtol=1e-12)
    maps = view.theta_maps()
    for k, m in enumerate(C.FIG4_MINUTES):
        np.testing.assert_allclose(maps["theta"].iloc[k], cli["theta"][minutes.index(m)],
                                   rtol=1e-12, equal_nan=True)
    built_in = view.curves(material=None)
    assert np.max(np.abs(built_in["voltage_V"].to_numpy()[at] - cli["voltage_V"])) > 0.01

    # asymflux rate-sweep --ocv: Fig. 5b's current setting (its curve and its star)
    table = tmp_path / "sweep.csv"
    rates = list(C.CURVE_RATES_MA_G)
    assert main(["rate-sweep", "--csv", str(table), "--quiet", *tables,
                 "--film", f"180:{FRACTION:g}:{FILM!r}", "--rates", ",".join(map(repr, rates)),
                 "--radius-um", repr(C.FIG4_RADIUS_UM),
                 "--mesh", "x".join(str(n) for n in C.SWEEP_MESH)]) == 0
    sweep = pd.read_csv(table).set_index("rate_mA_g")["li_extracted"]
    layers = {name: r for r, (kind, name, _d) in zip(
        view._rate_fig.renderers, _rate_layers(view), strict=True) if kind == "curve"}
    # the page runs a curve's rates side by side in one integration (_compute.
    # li_extracted_at_rates: each rate's own run within 1e-4 per f.u.), rate-sweep one by one
    curve = layers[C.CURRENT_LABEL].data_source.data
    np.testing.assert_allclose(curve["li_extracted"], sweep.loc[curve["rate_mA_g"]].to_numpy(),
                               atol=1e-4)
    star = view._rate_fig.renderers[-1].data_source.data
    assert star["rate_mA_g"][0] == RATE
    np.testing.assert_allclose(star["li_extracted"][0], sweep.loc[RATE], atol=1e-4)
    assert f"{star['li_extracted'][0]:.4f}" in view._rate_fig.title.text
    # one rate alone is the command line's run
    assert C.li_extracted(1.0, FRACTION, RATE, 1.0, FILM, view.settings.material) == \
        pytest.approx(sweep.loc[RATE], rel=1e-9)
    assert abs(sweep.loc[RATE] - before) > 1e-3  # the tables changed it: 10x the tolerance


def _rate_layers(view):
    from asymflux import plots

    return plots.fig5b_layers(view.rate_table(), current_rate_mA_g=RATE,
                              current_li_extracted=0.5, labels=view._rate_labels())


def test_a_bad_table_is_named_on_the_page_and_changes_nothing(view, tmp_path, capsys):
    """A bad upload: the page shows the command line's own message (the file, the column,
    what was expected); the tables in use, the runs and the plots stay as they were."""
    bad = tmp_path / "rising.csv"
    bad.write_text("theta,voltage_V\n0.3,4.1\n0.5,4.2\n")
    assert main(["simulate", "--out", str(tmp_path / "x.npz"), "--ocv", str(bad)]) == 2
    cli = " ".join(capsys.readouterr().err.split())
    in_use, ready = view.settings.material, (view.maps_ready, view.rate_ready)
    view.alert.visible = False
    _upload(view, "ocv", bad.read_bytes(), bad.name)
    shown = view.alert.object
    assert view.alert.visible and "Cannot use this OCV table" in shown
    said = shown.split("curves): ", 1)[1]
    assert said.startswith("rising.csv: column voltage_V must not increase"), shown
    assert said in cli.replace(str(bad), bad.name)  # the CLI's words
    assert view.settings.material == in_use and (view.maps_ready, view.rate_ready) == ready
    # a D(θ) table without its column: named too; a good table clears the message
    _upload(view, "diffusivity", b"theta,D\n0.3,1e-15\n0.6,2e-15\n", "gitt.csv")
    assert "gitt.csv: needs a column 'diffusivity_m2_s'" in view.alert.object
    assert view.settings.material == in_use
    _upload(view, "diffusivity", b"theta,diffusivity_m2_s\n0.3,1e-15\n0.6,2e-15\n", "gitt.csv")
    assert not view.alert.visible
    assert view.settings.diffusivity_table.values == (1e-15, 2e-15)
    assert "D(θ) gitt.csv" in view.maps_title.object


def test_reset_gives_the_built_in_set_back(view, tmp_path):
    _upload(view, "ocv", _ocv_table(tmp_path / "o.csv").read_bytes(), "o.csv")
    assert view.settings.material is not None
    view.material_reset.clicks += 1
    assert view.settings.material is None and view.model_settings()["material"] is None
    assert all(w.value is None for w in view.table_uploads.values())
    assert "OCV" not in view.maps_title.object.split("D ×")[1]
    assert C.built_in_curves()["ocv"] in view.material_info.object
    from asymflux import model

    default_ocv = model.nmc88_lun2025()["Open-circuit voltage [V]"]
    assert default_ocv.__name__ in view.material_info.object  # the default set's curve named
    built_in = C.material_curves(None)
    np.testing.assert_allclose(view._material_src.data["voltage_V"], built_in["voltage_V"])


def test_fig5b_legend_markers_match_their_lines(view):
    """Each legend entry of the page's Fig. 5b draws its line and marker in one colour (the
    current setting's star has its own entry: it was drawn over that curve's marker)."""
    for legend in view._rate_fig.legend:
        for item in legend.items:
            colours = {c for r in item.renderers
                       for c in (r.glyph.line_color, getattr(r.glyph, "fill_color", None))
                       if c is not None}
            assert len(colours) == 1, (item.label, colours)
