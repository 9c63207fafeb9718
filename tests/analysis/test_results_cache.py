"""The results cache (asymflux.analysis._cache): a second analysis of unchanged inputs is read,
not measured; a changed option or file is measured again; equal tables with and without it;
two writers of one key leave a whole entry."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_pipeline_cli import make_dataset

from asymflux import analysis as an
from asymflux import io
from asymflux.analysis import _cache, _pipeline
from asymflux.cli import main


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    return io.write_dataset(make_dataset("aged", "aged-1"),
                            tmp_path_factory.mktemp("data") / "aged-1")


@pytest.fixture
def counted(monkeypatch):
    """The number of times the measurement (analyze_dataset) ran."""
    calls = []
    real = _pipeline.analyze_dataset

    @functools.wraps(real)  # its signature (the key holds its defaults)
    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(_pipeline, "analyze_dataset", counting)
    return calls


def _equal(a, b):
    pa, ta, la, na = a
    pb, tb, lb, nb = b
    pd.testing.assert_frame_equal(pa, pb)
    pd.testing.assert_frame_equal(ta, tb)
    assert repr(pa.attrs) == repr(pb.attrs) and repr(ta.attrs) == repr(tb.attrs)  # NaN-aware
    np.testing.assert_array_equal(la, lb)
    assert na == nb


def test_second_analysis_reads_the_cache(dataset_folder, tmp_path, counted):
    cache = tmp_path / "cache"
    first = an.analyze_path(dataset_folder, options={"threshold": 0.05}, cache=cache)
    assert len(counted) == 1 and not _cache.last.hit
    entries = list(cache.glob("*/*.pkl"))
    assert len(entries) == 1
    second = an.analyze_path(dataset_folder, options={"threshold": 0.05}, cache=cache)
    assert len(counted) == 1 and _cache.last.hit and _cache.last.entry == entries[0]
    _equal(first, second)
    # n_threads does not change the numbers: the same entry
    an.analyze_path(dataset_folder, options={"threshold": 0.05, "n_threads": 1}, cache=cache)
    assert len(counted) == 1
    # without the cache: measured, the same tables, nothing read or written
    fresh = an.analyze_path(dataset_folder, options={"threshold": 0.05}, cache=False)
    assert len(counted) == 2 and not _cache.last.hit
    _equal(first, fresh)
    assert len(list(cache.glob("*/*.pkl"))) == 1


def test_changed_option_or_file_is_measured_again(tmp_path, counted):
    folder = io.write_dataset(make_dataset("aged", "aged-1"), tmp_path / "aged-1")
    cache = tmp_path / "cache"
    an.analyze_path(folder, cache=cache)
    an.analyze_path(folder, options={"threshold": 0.06}, cache=cache)  # another option
    assert len(counted) == 2
    an.analyze_path(folder, options={"threshold": 0.06}, cache=cache)
    an.analyze_path(folder, cache=cache)
    assert len(counted) == 2  # both read back
    an.analyze_path(folder, cache=cache, time_offset_s=0.0)  # another keyword
    assert len(counted) == 3
    meta = folder / "metadata.json"
    st = meta.stat()
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched
    an.analyze_path(folder, cache=cache)
    assert len(counted) == 4 and not _cache.last.hit
    an.analyze_path(folder, cache=cache)
    assert len(counted) == 4 and _cache.last.hit
    # rewritten with other content, size and mtime put back: the hash of its bytes differs
    text = meta.read_text()
    st = meta.stat()
    meta.write_text(text.replace('"aged"', '"agex"'))
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns))
    parts, *_ = an.analyze_path(folder, cache=cache)
    assert len(counted) == 5 and set(parts["ageing"]) == {"agex"}


def test_changed_movie_is_measured_again(tmp_path, counted):
    """A bare stack rewritten (another frame) and a cycler file rewritten: new keys."""
    ds = make_dataset()
    stack = tmp_path / "movie.npy"
    np.save(stack, np.asarray(ds.stack))
    cache = tmp_path / "cache"
    kw = {"pixel_nm": 65.0, "frame_interval_s": 30.0, "masks": ds.masks, "cache": cache}
    first = an.analyze_path(stack, **kw)
    an.analyze_path(stack, **kw)
    assert len(counted) == 1
    changed = np.asarray(ds.stack).copy()
    changed[-1] = changed[0]
    np.save(stack, changed)
    second = an.analyze_path(stack, **kw)
    assert len(counted) == 2
    assert not second[1]["mean_dI"].equals(first[1]["mean_dI"])
    other = {**kw, "masks": np.where(ds.masks == 2, 0, ds.masks)}  # other masks
    an.analyze_path(stack, **other)
    assert len(counted) == 3


def test_uncacheable_option_bypasses(tmp_path, counted, dataset_folder):
    class Opaque:
        pass

    with pytest.raises(_cache.Uncacheable):
        _cache.cache_key("x", [dataset_folder], {"o": Opaque()})
    calls = []
    for _ in range(2):
        assert _cache.cached("x", [dataset_folder], {"o": Opaque()},
                             lambda: calls.append(1) or 7, cache=tmp_path) == 7
    assert len(calls) == 2 and not list(tmp_path.glob("*/*.pkl"))


def test_damaged_entry_is_a_miss(tmp_path, dataset_folder):
    calls = []

    def compute():
        calls.append(1)
        return {"value": 1}

    assert _cache.cached("x", [dataset_folder], {}, compute, cache=tmp_path) == {"value": 1}
    (entry,) = tmp_path.glob("*/*.pkl")
    entry.write_bytes(entry.read_bytes()[:20])  # cut short (not by the cache: it renames)
    assert _cache.cached("x", [dataset_folder], {}, compute, cache=tmp_path) == {"value": 1}
    assert len(calls) == 2
    assert _cache.cached("x", [dataset_folder], {}, compute, cache=tmp_path) == {"value": 1}
    assert len(calls) == 2  # replaced by a whole entry


def test_large_file_identity_reads_its_ends_only(tmp_path):
    """A large input is identified by stat and its first and last 64 KiB: a change there
    counts, and the middle is not read (a multi-GB movie is not read to find its entry)."""
    f = tmp_path / "movie.raw"
    f.write_bytes(bytes(4 << 20))
    a = _cache.input_identity(f)
    with open(f, "r+b") as fh:
        fh.seek((4 << 20) - 10)
        fh.write(b"x")
    st = f.stat()
    b = _cache.input_identity(f)
    assert a["sha256"] != b["sha256"] and a["size"] == b["size"]
    with open(f, "r+b") as fh:  # the middle, mtime put back: not seen (by design)
        fh.seek(2 << 20)
        fh.write(b"y")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _cache.input_identity(f) == b


def test_two_threads_write_one_key(tmp_path, dataset_folder):
    value = {"table": pd.DataFrame({"x": np.arange(200_000.0)})}
    errors = []

    def writer():
        try:
            for _ in range(5):
                _cache._store(_cache.entry_path(tmp_path, "ab" * 32), "k", value)
                got = _cache._load(_cache.entry_path(tmp_path, "ab" * 32), "k")
                pd.testing.assert_frame_equal(got["table"], value["table"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{'ab' * 32}.pkl"]


_WRITER = """
import sys
from pathlib import Path
from asymflux.analysis import analyze_path
r = analyze_path(Path(sys.argv[1]), cache=Path(sys.argv[2]))
print(len(r[0]))
"""


@pytest.mark.slow
def test_two_processes_write_one_key(tmp_path, dataset_folder):
    """Two processes analyse the same dataset into one cache at once: one whole entry, equal
    to an analysis without the cache."""
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(an.__file__).parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(dataset_folder), str(cache)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".pkl"
    _equal(an.analyze_path(dataset_folder, cache=cache),
           an.analyze_path(dataset_folder, cache=False))
    assert _cache.last.hit is False  # the last call: cache=False


def test_cli_no_cache(dataset_folder, tmp_path, counted, monkeypatch, capsys):
    monkeypatch.delenv("ASYMFLUX_RESULTS_CACHE")
    monkeypatch.setenv("ASYMFLUX_CACHE", str(tmp_path / "user-cache"))
    assert _cache.results_cache_dir() == tmp_path / "user-cache" / "results"
    assert main(["analyze", str(dataset_folder), "--out", str(tmp_path / "a")]) == 0
    assert main(["analyze", str(dataset_folder), "--out", str(tmp_path / "b")]) == 0
    assert len(counted) == 1
    assert "read from the cache" in capsys.readouterr().err
    assert main(["analyze", str(dataset_folder), "--out", str(tmp_path / "c"), "--no-cache"]) == 0
    assert len(counted) == 2
    for n in ("particles.csv", "timeseries.csv"):
        a = pd.read_csv(tmp_path / "a" / n)
        pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "b" / n))
        pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "c" / n))
    assert main(["analyze", str(dataset_folder), "--out", str(tmp_path / "d"),
                 "--threshold", "0.07"]) == 0
    assert len(counted) == 3
    assert an.clear_results_cache() == 2
    assert not _cache.results_cache_dir().exists()


def test_options_at_their_defaults_share_an_entry(dataset_folder, tmp_path, counted):
    """``analyze``'s explicit defaults and a library call without options: one entry."""
    an.analyze_path(dataset_folder, cache=tmp_path)
    an.analyze_path(dataset_folder, options={"threshold": 0.05, "register": True, "edge_px": 2},
                    cache=tmp_path)
    assert len(counted) == 1 and _cache.last.hit


def test_provenance_remembers_a_large_files_hash(tmp_path, monkeypatch):
    """provenance hashes a large file in full once per identity; a change is hashed again."""
    from asymflux import provenance

    monkeypatch.setattr(provenance, "REMEMBER_SHA256_BYTES", 1 << 20)
    f = tmp_path / "movie.raw"
    f.write_bytes(bytes(2 << 20))
    calls = []
    real = provenance.sha256_file
    monkeypatch.setattr(provenance, "sha256_file", lambda p: calls.append(p) or real(p))
    first = provenance.file_record(f)["sha256"]
    assert provenance.file_record(f)["sha256"] == first == real(f) and len(calls) == 1
    f.write_bytes(b"\1" + bytes((2 << 20) - 1))
    assert provenance.file_record(f)["sha256"] == real(f) != first and len(calls) == 2
