"""Gamry ``.DTA`` files (the EXPLAIN layout): the two real files, and written-in-test texts.

The real files are in ``../shared/data/echem`` (never copied here). Independent readings:
rows written out as literals (checked by eye with ``sed``), and ``gamry-parser`` where it
works (decimal-point files; its 0.x releases read numbers with the machine's locale).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from asymflux.io import DatasetError, read_echem
from asymflux.io.echem import EchemWarning, echem_format
from tests._helpers.io_utils import read_echem_quietly as _read

CHRONOP = "gamry_chronopot_0A.DTA"
PWR800 = "gamry_pwr800_discharge.DTA"




def _gamry_parser_curves(path):
    """gamry-parser's curves as [{column: ndarray}] (its 0.x or 1.x API), or skip."""
    gp = pytest.importorskip("gamry_parser")
    if hasattr(gp, "read"):  # 1.x (polars)
        exp = gp.read(str(path))
        return [{c: curve[c].to_numpy() for c in curve.columns}
                for curve in (exp.curve(k) for k in range(exp.curve_count))]
    parser = gp.GamryParser(filename=str(path))
    parser.load()
    return [{c: curve[c].to_numpy() for c in curve.columns}
            for curve in parser.get_curves()]


# ---------------------------------------------------------------------------- real files


def test_real_chronopotentiometry_decimal_comma(echem_dir):
    df = _read(echem_dir / CHRONOP, active_mass_mg=5.0)
    assert echem_format(echem_dir / CHRONOP) == "gamry-dta"
    assert len(df) == 121  # CURVE TABLE 121, rows 0..120
    t = df["time_s"].to_numpy()
    np.testing.assert_array_equal(t, np.arange(121.0))  # 1 s sampling, 0..120 s
    # first and last rows, as written (sed -n '68p;188p'): decimal commas
    assert df["voltage_V"].iloc[0] == pytest.approx(1.57964, abs=1e-12)
    assert df["current_mA"].iloc[0] == pytest.approx(-34.1116, abs=1e-9)
    assert df["voltage_V"].iloc[-1] == pytest.approx(0.534215, abs=1e-12)
    assert df["current_mA"].iloc[-1] == pytest.approx(-33.4522, abs=1e-9)
    # CONVENTION 1 (anodic positive): a negative Im is a reduction, our discharge
    assert (df["current_mA"] < 0).all()
    assert np.all(np.diff(df["charge_mAh"]) < 0)
    # ~ -33.7 mA for 120 s: -1.12 mAh
    assert df["charge_mAh"].iloc[-1] == pytest.approx(-33.7 * 120 / 3600, rel=0.01)
    a = df.attrs
    assert a["format"] == "Gamry EXPLAIN .DTA" and a["technique"] == "CHRONOP"
    assert a["gamry_framework"] == "7.10.1"
    assert a["gamry_tables"] == [{"table": "CURVE", "rows_read": 121, "rows_declared": 121,
                                  "time_s": [0.0, 120.0]}]
    assert "anodic current positive" in a["current_from"]
    assert "start" not in a  # 4/11/2025: April or November is not said
    assert a["start_as_written"] == "4/11/2025 11:37:39"
    assert a["warnings"] == []


def test_real_pwr800_discharge(echem_dir):
    df = _read(echem_dir / PWR800)
    assert echem_format(echem_dir / PWR800) == "gamry-dta"
    assert len(df) == 6613
    t = df["time_s"].to_numpy()
    assert t[0] == 5.0 and t[-1] == pytest.approx(33060.1)
    assert np.all(np.diff(t) > 0)
    # sed -n '64p;6676p': first and last records
    assert df["voltage_V"].iloc[0] == pytest.approx(4.17089, abs=1e-12)
    assert df["current_mA"].iloc[0] == pytest.approx(-349.825, abs=1e-9)
    assert df["voltage_V"].iloc[-1] == pytest.approx(3.00015, abs=1e-12)
    assert df["current_mA"].iloc[-1] == pytest.approx(-349.834, abs=1e-9)
    assert (df["current_mA"] < 0).all()  # a discharge: negative, as for every brand
    # 0.35 A for 33055 s: 3.21 Ah out
    assert df["charge_mAh"].iloc[-1] == pytest.approx(-349.83 * (33060.1 - 5) / 3600, rel=1e-3)
    assert df.attrs["technique"] == "PWR800_DISCHARGE"
    assert df.attrs["start"] == "2024-02-01T22:03:16"  # DATE 1.2.2024: day.month.year


def test_real_pwr800_agrees_with_gamry_parser(echem_dir):
    curves = _gamry_parser_curves(echem_dir / PWR800)
    assert len(curves) == 1
    ref = curves[0]
    df = _read(echem_dir / PWR800)
    np.testing.assert_allclose(df["time_s"], ref["T"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(df["voltage_V"], ref["Vf"], rtol=1e-12)
    np.testing.assert_allclose(df["current_mA"], ref["Im"] * 1000, rtol=1e-12)


def test_real_files_read_by_content_not_name(echem_dir, tmp_path):
    renamed = tmp_path / "cycler.csv"
    renamed.symlink_to(echem_dir / CHRONOP)
    assert echem_format(renamed) == "gamry-dta"
    np.testing.assert_array_equal(_read(renamed)["voltage_V"],
                                  _read(echem_dir / CHRONOP)["voltage_V"])


# ---------------------------------------------------------------------------- written here

HEAD = [
    "EXPLAIN",
    "TAG\t{tag}",
    "TITLE\tLABEL\tTest\tTest Identifier",
    "DATE\tLABEL\t2/13/2024\tDate",
    "TIME\tLABEL\t09:15:00\tTime",
    "NOTES\tNOTES\t2\tNotes...",
    "\tfirst note line",
    "\t",
    "PSTAT\tPSTAT\tREF600-1\tPotentiostat",
    "ISTEP1\tQUANT\t1.00000E-003\tStep 1 Current (A)",
    "CONVENTION\tIQUANT\t{convention}\tCurrent Convention",
    "FRAMEWORKVERSION\tLABEL\t7.10.1\tFramework Version",
]
NAMES = "\tPt\tT\tVf\tIm\tVu\tSig\tAch\tIERange\tOver"
UNITS = "\t#\ts\tV vs. Ref.\tA\tV\tV\tV\t#\tbits"


def _rows(t, v, i, *, start=0):
    return [f"\t{start + k}\t{tk:g}\t{vk:.5E}\t{ik:.5E}\t0.00000E+000\t0.00000E+000\t"
            f"1.00000E-004\t11\t..........." for k, (tk, vk, ik) in enumerate(zip(t, v, i, strict=True))]


def _table(name, t, v, i, *, declared=None, start=0):
    n = len(t) if declared is None else declared
    return [f"{name}\tTABLE\t{n}", NAMES, UNITS, *_rows(t, v, i, start=start)]


def _write(tmp_path, lines, *, name="cell.DTA", decimal=".", tag="CHRONOP", convention=1,
           newline="\n", encoding="utf-8"):
    text = newline.join([*(h.format(tag=tag, convention=convention) for h in HEAD), *lines])
    text += newline
    if decimal == ",":
        # Gamry on a decimal-comma locale: every number, header and rows, with a comma
        text = "\n".join(
            "\t".join(f.replace(".", ",") if _DECIMAL.fullmatch(f) else f
                      for f in line.split("\t"))
            for line in text.split("\n"))
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


_DECIMAL = re.compile(r"[-+]?\d+\.\d+([eE][-+]?\d+)?")
T = np.arange(0.0, 50.0, 5.0)
V = 3.7 + 0.01 * np.arange(10)
I_A = np.full(10, 2.0e-3)  # 2 mA charging


@pytest.mark.parametrize("decimal", [".", ","])
def test_decimal_point_and_comma(tmp_path, decimal):
    p = _write(tmp_path, _table("CURVE", T, V, I_A), decimal=decimal)
    if decimal == ",":
        assert "\t3,70000E+00\t" in p.read_text() and "7.10.1" in p.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_echem(p, active_mass_mg=1.0)
    np.testing.assert_allclose(df["time_s"], T)
    np.testing.assert_allclose(df["voltage_V"], V, rtol=1e-12)
    np.testing.assert_allclose(df["current_mA"], 2.0, rtol=1e-12)
    assert df["charge_mAh"].iloc[-1] == pytest.approx(2.0 * 45 / 3600)
    assert df.attrs["start"] == "2024-02-13T09:15:00"  # 13 is no month


def test_written_files_agree_with_gamry_parser(tmp_path):
    """A CV-like file: CURVE1, CURVE2 on one clock, joined; gamry-parser reads each."""
    lines = [*_table("CURVE1", T, V, I_A), *_table("CURVE2", T + 50.0, V[::-1], -I_A, start=10)]
    p = _write(tmp_path, lines, tag="CV")
    curves = _gamry_parser_curves(p)
    assert len(curves) == 2
    df = _read(p)
    for column, ours, factor in (("T", "time_s", 1.0), ("Vf", "voltage_V", 1.0),
                                 ("Im", "current_mA", 1000.0)):
        ref = np.concatenate([c[column] for c in curves]) * factor
        np.testing.assert_allclose(df[ours], ref, rtol=1e-12, atol=1e-12)


def test_crlf_cp1252_and_notes(tmp_path):
    lines = ["COMMENT\tLABEL\t25 \u00b0C cell\tComment", *_table("CURVE", T, V, I_A)]
    p = _write(tmp_path, lines, newline="\r\n", encoding="cp1252")
    df = _read(p)
    assert len(df) == 10 and df.attrs["warnings"] == []


def test_cathodic_convention_reversed(tmp_path):
    df = _read(_write(tmp_path, _table("CURVE", T, V, I_A), convention=0))
    np.testing.assert_allclose(df["current_mA"], -2.0)
    assert "sign reversed" in df.attrs["current_from"]


def test_curves_joined_in_time_order_restart_said(tmp_path):
    ocv_t = np.arange(0.0, 10.5, 1.0)  # 0..10 s
    ocv = ["OCVCURVE\tTABLE\t11", "\tPt\tT\tVf\tVm\tAch\tOver", "\t#\ts\tV vs. Ref.\tV\tV\tbits",
           *[f"\t{k}\t{tk:g}\t3.50000E+000\t3.50000E+000\t0\t..........." for k, tk in
             enumerate(ocv_t)]]
    lines = [*ocv, "EOC\tQUANT\t3.5\tOpen Circuit (V)",
             *_table("CURVE1", T + 0.5, V, I_A),                       # 0.5..45.5, restarts
             *_table("CURVE2", T + 50.5, V, -I_A, start=10)]           # continues
    p = _write(tmp_path, lines, tag="CV")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a restart is said in attrs, not warned about
        df = read_echem(p)
    assert len(df) == 31
    t = df["time_s"].to_numpy()
    assert np.all(np.diff(t) >= 0)
    np.testing.assert_allclose(t[:11], ocv_t)
    np.testing.assert_allclose(t[11:21], T + 0.5 + 10.0)  # after the OCV's last time
    np.testing.assert_allclose(t[21:], T + 50.5 + 10.0)   # the same shift carried on
    np.testing.assert_array_equal(df["current_mA"].to_numpy()[:11], 0.0)
    np.testing.assert_allclose(df["current_mA"].to_numpy()[11:21], 2.0)
    np.testing.assert_allclose(df["current_mA"].to_numpy()[21:], -2.0)
    np.testing.assert_array_equal(df["step"], [0] * 11 + [1] * 10 + [2] * 10)
    tables = df.attrs["gamry_tables"]
    assert [d["table"] for d in tables] == ["OCVCURVE", "CURVE1", "CURVE2"]
    assert tables[1]["time_offset_s"] == 10.0 and "restarts at 0.5 s" in tables[1]["time"]
    assert "time_offset_s" not in tables[0] and "time" not in tables[2]
    assert tables[2]["time_offset_s"] == 10.0  # on CURVE1's clock
    assert "open circuit" in tables[0]["current"]
    # CURVE1's first record reports the 0.5 s since its start (a step edge: the later
    # record's current), the OCV nothing
    assert df["charge_mAh"].iloc[20] == pytest.approx(2.0 * 45.5 / 3600, rel=1e-9)


def test_aborted_curve_read_up_to_the_abort(tmp_path):
    rows = _table("CURVE", T[:4], V[:4], I_A[:4], declared=10)
    rows[-1] = rows[-1][: len(rows[-1]) // 2]  # the last row cut in the middle of a number
    p = _write(tmp_path, [*rows, "EXPERIMENTABORTED\tTOGGLE\tT\tExperiment Aborted"])
    with pytest.warns(EchemWarning) as record:
        df = read_echem(p)
    assert len(df) == 3
    np.testing.assert_allclose(df["time_s"], T[:3])
    said = " ".join(str(w.message) for w in record)
    assert said.startswith(str(p))
    assert "declares 10 rows and holds 3" in said and "line 19" in said
    assert "not a whole record" in said and "EXPERIMENTABORTED" in said
    assert len(df.attrs["warnings"]) == 3
    assert df.attrs["gamry_tables"][0]["aborted"] is True


def test_lines_after_the_last_table(tmp_path):
    lines = [*_table("CURVE", T, V, I_A),
             "STARTTIMEOFFSET\tQUANT\t16.83167\tStart Time Offset (s)",  # a header line: fine
             "STOPREASON\tLABEL\tVoltage Limit\tStop Reason"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_echem(_write(tmp_path, lines))
    assert len(df) == 10
    junk = [*_table("CURVE", T, V, I_A), "", "#### export ended ####", "x"]
    with pytest.warns(EchemWarning, match="after the tables"):
        df = read_echem(_write(tmp_path, junk, name="junk.DTA"))
    np.testing.assert_allclose(df["voltage_V"], V)


def test_impedance_refused_naming_the_technique(tmp_path):
    lines = ["ZCURVE\tTABLE\t3", "\tPt\tTime\tFreq\tZreal\tZimag\tZmod\tZphz",
             "\t#\ts\tHz\tohm\tohm\tohm\t\u00b0",
             "\t0\t1\t10000\t224.6\t-3.7\t224.6\t-0.96",
             "\t1\t3\t5000\t224.7\t-4.2\t224.7\t-1.09",
             "\t2\t4\t1000\t225.1\t-4.8\t225.2\t-1.23"]
    for tag in ("EISPOT", "EISGALV"):
        with pytest.raises(DatasetError, match=rf"cell\.DTA.*impedance.*{tag}.*ZCURVE"):
            read_echem(_write(tmp_path, lines, tag=tag))


def test_impedance_technique_refused_and_impedance_rows_beside_a_time_series(tmp_path):
    eismon = ["CURVE\tTABLE\t2", "\tPt\tT\tFreq\tZmod", "\t#\ts\tHz\tohm",
              "\t0\t0\t1000\t5.1", "\t1\t60\t1000\t5.2"]
    with pytest.raises(DatasetError, match=r"impedance.*technique EISMON"):
        read_echem(_write(tmp_path, eismon, tag="EISMON"))
    z = ["ZCURVE\tTABLE\t1", "\tPt\tTime\tFreq\tZreal\tZimag", "\t#\ts\tHz\tohm\tohm",
         "\t0\t1\t1000\t0.5\t-0.1"]
    p = _write(tmp_path, [*_table("CURVE", T, V, I_A), *z], name="mixed.DTA", tag="PWR800_CHARGE")
    with pytest.warns(EchemWarning, match="table ZCURVE.*not read"):
        df = read_echem(p)
    assert len(df) == 10 and df.attrs["gamry_tables_not_read"] == ["ZCURVE"]


def test_cycle_summary_refused_naming_the_technique(tmp_path):
    lines = ["CAPACITYCURVE\tTABLE", "\tPt\tTime\tType\tCycle\tCharge\tDuration\tVstart\tVend",
             "\t#\ts\t#\t#\tC\ts\tV\tV",
             "\t1\t3493\t0\t1\t4362.1\t3492.6\t0.79\t1.20",
             "\t2\t6701\t1\t1\t4013.8\t3207.5\t0.79\t0.40",
             "STOPREASON\tLABEL\tCycle Limit\tStop Reason"]
    p = _write(tmp_path, lines, tag="PWR800_CYCLICCHARGEDISCHARGE")
    with pytest.raises(DatasetError,
                       match=r"cell\.DTA.*cycle summary.*PWR800_CYCLICCHARGEDISCHARGE"):
        read_echem(p)


def test_empty_and_header_only_files_refused(tmp_path):
    empty = tmp_path / "empty.DTA"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"empty\.DTA.*empty"):
        read_echem(empty)
    with pytest.raises(DatasetError, match=r"header\.DTA.*holds no records.*header only"):
        read_echem(_write(tmp_path, [], name="header.DTA"))
    no_rows = _write(tmp_path, ["CURVE\tTABLE\t0", NAMES, UNITS], name="norows.DTA")
    with pytest.raises(DatasetError, match=r"norows\.DTA.*holds no records"):
        read_echem(no_rows)
    bare = tmp_path / "bare.DTA"
    bare.write_text("EXPLAIN\n")
    with pytest.raises(DatasetError, match=r"bare\.DTA.*without a TAG"):
        read_echem(bare)


def test_open_circuit_file_reads_with_zero_current(tmp_path):
    lines = ["CURVE\tTABLE\t10", "\tPt\tT\tVf\tVm\tAch\tOver", "\t#\ts\tV vs. Ref.\tV\tV\tbits",
             *[f"\t{k}\t{tk:g}\t{vk:.5E}\t{vk:.5E}\t0\t..........." for k, (tk, vk) in
               enumerate(zip(T, V, strict=True))]]
    df = _read(_write(tmp_path, lines, tag="CORPOT"))
    assert df.attrs["open_circuit"] is True and "CORPOT" in df.attrs["current_from"]
    np.testing.assert_array_equal(df["current_mA"], 0.0)
    np.testing.assert_array_equal(df["charge_mAh"], 0.0)
    np.testing.assert_allclose(df["voltage_V"], V)


def test_rows_that_are_not_records_amid_records(tmp_path):
    lines = _table("CURVE", T, V, I_A)
    lines[3 + 4] = lines[3 + 4].replace("3.74000E+00", "-1.#IND00E+000")  # Vf of record 4
    with pytest.warns(EchemWarning, match=r"1 row\(s\) without a number.*line 20"):
        df = read_echem(_write(tmp_path, lines))
    np.testing.assert_allclose(df["time_s"], np.delete(T, 4))


def test_time_restart_within_a_table(tmp_path):
    t = np.r_[T[:5], T[:5]]  # 0..20 s, then 0..20 s again
    df = _read(_write(tmp_path, _table("CURVE", t, V, I_A)))
    np.testing.assert_allclose(df["time_s"], np.r_[T[:5], T[:5] + 20.0])
    np.testing.assert_array_equal(df["step"], [0] * 5 + [1] * 5)
    info = df.attrs["gamry_tables"][0]
    assert info["time_restarts_at_lines"] == [21] and "restarts at 0 s" in info["time"]


def test_time_jitter_within_a_table_is_not_a_restart(tmp_path):
    t = T.copy()
    t[5] = t[4] - 0.01  # a record stamped 10 ms before the one before it
    with pytest.warns(EchemWarning, match="1 record time.*moved forward"):
        df = read_echem(_write(tmp_path, _table("CURVE", t, V, I_A)))
    np.testing.assert_allclose(df["time_s"], np.r_[T[:5], T[4], T[6:]])
    assert "step" not in df.columns


def test_charge_column_of_the_file(tmp_path):
    """Chronocoulometry: the file's Q (C), signed like Im, restarting with each curve."""
    names, units = "\tPt\tT\tVf\tIm\tQ\tOver", "\t#\ts\tV vs. Ref.\tA\tC\tbits"

    def rows(t0):
        return [f"\t{k}\t{t0 + 5.0 * k:g}\t3.70000E+000\t2.00000E-003\t{2e-3 * 5.0 * k:.6E}\t..."
                for k in range(10)]

    lines = ["CURVE1\tTABLE\t10", names, units, *rows(0.0),
             "CURVE2\tTABLE\t10", names, units, *rows(0.0)]
    df = _read(_write(tmp_path, lines, tag="CHRONOC"))
    assert df.attrs["charge_from"].startswith("Q (C): the file's charge counter")
    # 2 mA for 45 s per curve, plus CURVE2's first record (Q = 0 at its start): 90 s
    assert df["charge_mAh"].iloc[-1] == pytest.approx(2.0 * 90 / 3600, rel=1e-9)
    unsigned = [ln.replace("\t2.00000E-003\t", "\t-2.00000E-003\t") for ln in lines]
    with pytest.warns(EchemWarning, match="disagrees with the current"):
        df = read_echem(_write(tmp_path, unsigned, name="unsigned.DTA", tag="CHRONOC"))
    assert df["charge_mAh"].iloc[-1] == pytest.approx(-2.0 * 90 / 3600, rel=1e-6)


@pytest.mark.parametrize("cut", [100, 0.5])
def test_real_file_cut_short(echem_dir, tmp_path, cut):
    data = (echem_dir / PWR800).read_bytes()
    p = tmp_path / "cut.DTA"
    p.write_bytes(data[: cut if isinstance(cut, int) else int(len(data) * cut)])
    if cut == 100:  # the header's first lines only
        with pytest.raises(DatasetError, match=r"cut\.DTA.*holds no records.*header only"):
            read_echem(p)
        return
    with pytest.warns(EchemWarning) as record:
        df = read_echem(p)
    said = " ".join(str(w.message) for w in record)
    assert "declares 6613 rows" in said and "not a whole record" in said
    whole = _read(echem_dir / PWR800)
    n = len(df)
    assert 3000 < n < 3400
    np.testing.assert_array_equal(df["time_s"], whole["time_s"][:n])
    np.testing.assert_array_equal(df["current_mA"], whole["current_mA"][:n])


@pytest.mark.parametrize(("date", "time", "start"), [
    ("1.2.2024", "22:03:16", "2024-02-01T22:03:16"),    # day.month.year
    ("2/13/2024", "5:03:16 PM", "2024-02-13T17:03:16"),  # month/day, 12-hour clock
    ("13/2/2024", "05:03:16", "2024-02-13T05:03:16"),    # day/month
    ("4/11/2025", "11:37:39", None),                     # April or November: not said
    ("2024-02-01", "noon", None),                        # no time of day: not said
])
def test_start_only_when_the_date_is_unambiguous(tmp_path, date, time, start):
    lines = [h.replace("2/13/2024", date).replace("09:15:00", time) for h in HEAD]
    p = tmp_path / "d.DTA"
    body = [*_table("CURVE", T, V, I_A)]
    p.write_text("\n".join([*(h.format(tag="CHRONOP", convention=1) for h in lines), *body]))
    df = _read(p)
    assert df.attrs.get("start") == start
    assert df.attrs["start_as_written"] == f"{date} {time}"
