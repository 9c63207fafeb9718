import numpy as np
import pandas as pd
import pytest

from asymflux import analysis as an
from asymflux import io
from asymflux.cli import main
from tests._helpers.analysis_synth import make_dataset


def test_analyze_dataset_tables():
    ds = make_dataset()
    particles, ts = an.analyze_dataset(ds)
    assert list(particles.columns[:3]) == ["dataset", "ageing", "particle_id"]
    assert len(particles) == 2 and len(ts) == 2 * 10
    p = particles.set_index("particle_id")
    assert p.loc[1, "classification"] == "asymmetric" and p.loc[2, "classification"] == "symmetric"
    assert p.loc[1, "direction_deg"] == pytest.approx(0, abs=1)
    assert p.loc[1, "max_offset_norm"] == pytest.approx(6 / np.sqrt(ts.area_um2.iloc[0] / (0.065**2 * np.pi)), rel=0.05)
    assert p.loc[1, "vanish_capacity_mAh_g"] == pytest.approx(9.0)  # last frame fully reacted
    assert p.loc[1, "last_offset_nm"] == pytest.approx(6 * 65, rel=0.05)
    np.testing.assert_allclose(ts[ts.particle_id == 1].capacity_mAh_g, np.linspace(0, 9, 10))
    # without masks the particles are detected, and give the same classification
    parts2, _ = an.analyze_dataset(make_dataset(masks=False))
    assert sorted(parts2.classification) == ["asymmetric", "symmetric"]
    with pytest.raises(ValueError, match="does not match"):
        an.analyze_dataset(ds, masks=np.ones((10, 10), int))


def test_cli_analyze_and_cohort(tmp_path):
    d1 = io.write_dataset(make_dataset("aged", "aged-1"), tmp_path / "aged-1", stack_format="zarr")
    d2 = io.write_dataset(make_dataset("fresh", "fresh-1", offset=(0, 0)), tmp_path / "fresh-1")
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    assert main(["analyze", str(d1), "--out", str(out1)]) == 0
    assert main(["analyze", str(d2), "--out", str(out2), "--parquet"]) == 0
    parts = pd.read_csv(out1 / "particles.csv")
    for col in ["dataset", "particle_id", "area_um2", "classification", "max_offset_norm",
                "vanish_capacity_mAh_g", "ageing"]:
        assert col in parts.columns
    ts = pd.read_csv(out1 / "timeseries.csv", keep_default_na=False, na_values=[""])
    for col in ["dataset", "particle_id", "frame", "time_s", "capacity_mAh_g", "mean_dI",
                "unreacted_fraction", "offset_nm", "offset_norm", "offset_angle_deg"]:
        assert col in ts.columns
    assert (out2 / "timeseries.parquet").exists() and (out1 / "masks" / "aged-1.tif").exists()
    cohort = tmp_path / "cohort.csv"
    assert main(["cohort", str(out1), str(out2), "--out", str(cohort)]) == 0
    s = pd.read_csv(cohort).set_index("ageing")
    assert s.loc["aged", "n_asymmetric"] == 1 and s.loc["fresh", "n_asymmetric"] == 0
    assert s.loc["aged", "n_particles"] == 2
    # --masks: used as given, and a clear error when they do not fit
    masks = tmp_path / "m.npy"
    np.save(masks, np.zeros((64, 160), np.int32) + 0)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 10), np.int32))
    with pytest.raises(ValueError, match="masks shape"):
        _run(["analyze", str(d1), "--out", str(out1), "--masks", str(bad)])
    assert main(["analyze", str(d1), "--out", str(tmp_path / "x"), "--masks", str(bad)]) == 2
    assert main(["cohort", str(tmp_path / "nowhere"), "--out", str(cohort)]) == 2


def _run(argv):
    from asymflux.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_cli_many_datasets_on_a_local_cluster(tmp_path):
    paths = [io.write_dataset(make_dataset(a, f"{a}-{i}"), tmp_path / f"{a}-{i}")
             for i, a in enumerate(["aged", "fresh"])]
    out = tmp_path / "out"
    assert main(["analyze", *map(str, paths), "--out", str(out)]) == 0
    parts = pd.read_csv(out / "particles.csv")
    assert sorted(parts.dataset.unique()) == ["aged-0", "fresh-1"]
    assert len(parts) == 4


def test_cli_analyze_bare_multichannel_movie_with_a_cycler_file(tmp_path, capsys):
    """A T x C x Y x X movie needs --channel; --echem brings the capacity of any cycler file."""
    import tifffile

    ds = make_dataset(masks=False)
    stack = np.asarray(ds.stack)
    movie = tmp_path / "tcyx.tif"
    tifffile.imwrite(movie, np.stack([np.zeros_like(stack), stack], axis=1), imagej=True,
                     metadata={"axes": "TCYX", "finterval": 30.0})
    cell = tmp_path / "cell.csv"
    t = np.arange(0, 271.0, 1.0)
    pd.DataFrame({"time_s": t, "voltage_V": 3.7, "current_mA": 0.002}).to_csv(cell, index=False)
    assert main(["analyze", str(movie), "--out", str(tmp_path / "no"), "--pixel-nm", "65"]) == 2
    assert "--channel" in capsys.readouterr().err and not (tmp_path / "no").exists()
    assert main(["analyze", str(movie), "--out", str(tmp_path / "r"), "--pixel-nm", "65",
                 "--channel", "1", "--echem", str(cell), "--active-mass-mg", "0.4"]) == 0
    ts = pd.read_csv(tmp_path / "r" / "timeseries.csv")
    reference = an.analyze_dataset(make_dataset(masks=False))[1]
    one = ts[ts.particle_id == ts.particle_id.min()]
    # 0.002 mA for 30 s per frame on 0.4 mg: 0.0417 mAh/g per frame
    np.testing.assert_allclose(one.capacity_mAh_g, 0.002 * np.arange(10) * 30 / 3600 / 0.4e-3,
                               rtol=1e-9)
    np.testing.assert_allclose(np.sort(ts.offset_nm.fillna(-1)),
                               np.sort(reference.offset_nm.fillna(-1)), rtol=1e-9)
    far = tmp_path / "far.csv"
    pd.DataFrame({"time_s": t + 1e6, "voltage_V": 3.7, "current_mA": 0.002}).to_csv(far,
                                                                                   index=False)
    assert main(["analyze", str(movie), "--out", str(tmp_path / "x"), "--pixel-nm", "65",
                 "--channel", "1", "--echem", str(far)]) == 2
    assert "do not overlap" in capsys.readouterr().err and not (tmp_path / "x").exists()
