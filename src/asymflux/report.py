"""A report a scientist can file: one self-contained HTML file per dataset of an
``asymflux analyze`` output (``asymflux report RESULTS --out DIR``).

Each report holds, in this order (each a section with an ``id``):

- ``particles``: a thumbnail of every particle with its outline (its registered crop's first
  and last frames and a dI frame when the dataset is at hand, else its mask);
- ``flags``: the quality-flag columns of the tables (any column named ``flag*`` /
  ``*_flag`` / ``flags``), per particle and the number of flagged frames;
- ``offset``: the offset d of the unreacted region against capacity for every particle,
  with its band when the timeseries carries one (``offset_nm_lo``/``_hi`` or an
  ``offset_nm_se``-like column);
- ``kymographs``: a horizontal line-cut kymograph through each particle (dataset at hand);
- ``classification``: the class, its reason and every confidence column present;
- ``fit``: the ``fit_*`` columns (``asymflux fit DATASET --all --out RESULTS``) with their
  standard errors and the uncertainty method;
- ``provenance``: versions, input files with size and SHA-256, every option, for the
  report and for the commands that made its inputs (their ``*provenance.json``).

Images are PNG embedded as base64 ``data:`` URIs; the file links to nothing outside itself.
"""

from __future__ import annotations

import base64
import html
import io as _io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .paper import UNREACTED_THRESHOLD

__all__ = ["SECTIONS", "dataset_report", "flag_columns", "offset_band_columns", "write_reports"]

#: The sections of a report, in order: (id, title).
SECTIONS = (("particles", "Particles"), ("flags", "Quality flags"),
            ("offset", "Offset d of the unreacted region against capacity"),
            ("kymographs", "Kymographs"), ("classification", "Classification"),
            ("fit", "Fit of the surface blocking"), ("provenance", "Provenance"))

_CSS = """
body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}
.thumbs figure{margin:0;text-align:center;font-size:0.8em}
pre{background:#f7f7f7;padding:0.6em;font-size:0.75em;overflow-x:auto}
.note{color:#666;font-size:0.9em}
"""


def _png(fig) -> str:
    """A matplotlib figure as an ``<img>`` with a base64 PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame) -> str:
    if df is None or not len(df):
        return '<p class="note">none</p>'
    return df.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}",
                      border=0)


def flag_columns(table: pd.DataFrame) -> list[str]:
    """Quality-flag columns: named ``flag*``, ``*_flag``, ``*_flags`` or ``flags``."""
    return [c for c in table.columns
            if str(c).lower().startswith("flag") or str(c).lower().endswith(("_flag", "_flags"))]


def offset_band_columns(timeseries: pd.DataFrame):
    """``(low, high, label)`` columns (or a spread column) of the offset's band, or None.

    Looks for ``offset_nm`` with ``_lo``/``_low``/``_lower``/``_p05``/``_q05`` and
    ``_hi``/``_high``/``_upper``/``_p95``/``_q95`` suffixes; else a spread
    ``offset_nm_se``/``_sd``/``_std``/``_err`` (band ± one spread)."""
    cols = set(timeseries.columns)
    for lo_s, hi_s in (("lo", "hi"), ("low", "high"), ("lower", "upper"), ("p05", "p95"),
                       ("q05", "q95"), ("ci_low", "ci_high"), ("p025", "p975")):
        lo, hi = f"offset_nm_{lo_s}", f"offset_nm_{hi_s}"
        if lo in cols and hi in cols:
            return lo, hi, f"{lo} to {hi}"
    for s in ("se", "sd", "std", "err", "stderr", "uncertainty"):
        c = f"offset_nm_{s}"
        if c in cols:
            return c, None, f"offset_nm ± {c}"
    return None


def _flag_summary(particles, timeseries) -> str:
    pcols, tcols = flag_columns(particles), flag_columns(timeseries)
    if not pcols and not tcols:
        return ('<p class="note">This analysis has no quality-flag columns (no column named '
                'flag*, *_flag or flags in particles.csv or timeseries.csv).</p>')
    out = []
    if pcols:
        out.append("<h3>Per particle</h3>" + _table(particles[["particle_id", *pcols]]))
    if tcols:
        def raised(s):
            if s.dtype == bool:
                return s
            if pd.api.types.is_numeric_dtype(s):
                return s.fillna(0) != 0
            return s.fillna("").astype(str).str.strip().isin(["", "False", "0", "none", "ok"]) == False  # noqa: E712

        counts = timeseries.groupby("particle_id")[tcols].agg(lambda s: int(raised(s).sum()))
        counts = counts.reset_index()
        counts.insert(1, "frames", timeseries.groupby("particle_id").size().to_numpy())
        out.append("<h3>Flagged frames per particle</h3>" + _table(counts))
    return "".join(out)


def _thumbnails(labels, analyses, pids) -> str:
    """Per particle: its registered crop's first and last frames and the dI of the middle
    frame (the dataset at hand), else its mask; the outline drawn on each."""
    import matplotlib.pyplot as plt

    from .analysis import crop_box

    figs = []
    for pid in pids:
        pa = analyses.get(pid)
        if pa is not None and pa.crop is not None:
            m, st, dI = pa.crop.mask, np.asarray(pa.crop.stack), np.asarray(pa.crop.dI)
            # the frame whose unreacted region is closest to 40 % of the particle
            core = np.array([np.nanmean(f[m] < UNREACTED_THRESHOLD) for f in dI])
            mid = int(np.nanargmin(np.abs(core - 0.4))) if np.isfinite(core).any() else dI.shape[0] // 2
            panels = [("first frame", st[0], "gray"), ("last frame", st[-1], "gray"),
                      (f"dI, frame {mid}", dI[mid], "Reds")]
        else:
            mask = labels == pid
            if not mask.any():
                continue
            m = mask[crop_box(mask, pad_px=6)]
            panels = [("labels", m.astype(float), "gray")]
        fig, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels), 2.0), squeeze=False)
        for ax, (title, img, cmap) in zip(axes[0], panels, strict=True):
            ax.imshow(img, cmap=cmap, interpolation="nearest",
                      **({"vmin": 0.0, "vmax": 0.3} if cmap == "Reds" else {}))
            ax.contour(m, levels=[0.5], colors="#1f77b4", linewidths=1.0)
            ax.set_title(title, fontsize=7)
            ax.set_axis_off()
        figs.append(f"<figure>{_png(fig)}<figcaption>particle {pid}</figcaption></figure>")
    return '<div class="thumbs">' + "".join(figs) + "</div>"


def _offset_plot(timeseries, pids) -> str:
    import matplotlib.pyplot as plt

    if "offset_nm" not in timeseries.columns:
        return '<p class="note">no offset_nm column</p>'
    band = offset_band_columns(timeseries)
    xcol = "capacity_mAh_g" if "capacity_mAh_g" in timeseries.columns and \
        timeseries["capacity_mAh_g"].notna().any() else "time_s"
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for pid in pids:
        t = timeseries[timeseries["particle_id"] == pid].sort_values(xcol)
        x = t[xcol].to_numpy(float)
        y = t["offset_nm"].to_numpy(float)
        (line,) = ax.plot(x, y, lw=1.2, label=f"particle {pid}")
        if band is not None:
            lo, hi, _ = band
            if hi is None:
                s = t[lo].to_numpy(float)
                ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.2, lw=0)
            else:
                ax.fill_between(x, t[lo].to_numpy(float), t[hi].to_numpy(float),
                                color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("capacity (mAh/g)" if xcol == "capacity_mAh_g" else "time (s)")
    ax.set_ylabel("offset d (nm)")
    ax.legend(fontsize=7, ncol=2)
    note = (f"Band: {html.escape(band[2])}." if band is not None else
            "No band: this analysis's timeseries has no uncertainty column for d.")
    return _png(fig) + f'<p class="note">{note}</p>'


def _kymographs(particles_analyses, pids) -> str:
    import matplotlib.pyplot as plt

    from . import analysis

    if not particles_analyses:
        return ('<p class="note">The dataset was not at hand (give it with --dataset): no '
                'kymographs.</p>')
    figs = []
    for pid in pids:
        pa = particles_analyses.get(pid)
        if pa is None or pa.crop is None:
            continue
        start, end = analysis.horizontal_line(pa.crop.mask)
        kymo, dist = analysis.line_kymograph(np.asarray(pa.crop.dI), start, end, pixel_nm=pa.pixel_nm)
        cap = np.asarray(pa.capacity_mAh_g, float)
        y = cap if np.isfinite(cap).all() else np.asarray(pa.time_s, float)
        fig, ax = plt.subplots(figsize=(2.6, 2.4))
        ax.imshow(kymo, aspect="auto", cmap="Reds", vmin=0, vmax=0.3, origin="upper",
                  extent=(float(dist[0]), float(dist[-1]), float(y[-1]), float(y[0])))
        ax.set_xlabel("distance (nm)", fontsize=7)
        ax.set_ylabel("capacity (mAh/g)" if y is cap else "time (s)", fontsize=7)
        ax.tick_params(labelsize=6)
        figs.append(f"<figure>{_png(fig)}<figcaption>particle {pid}: dI along the horizontal "
                    "line through its centre</figcaption></figure>")
    return '<div class="thumbs">' + "".join(figs) + "</div>"


def _classification(particles) -> str:
    keys = ["particle_id", "classification"]
    extra = [c for c in particles.columns if c not in keys and not c.startswith("fit_") and (
        c in ("classification_reason", "max_offset_norm", "asymmetry_score")
        or any(k in c.lower() for k in ("confidence", "probab", "max_offset_norm_", "class_"))
    )]
    note = ""
    if not any(any(k in c.lower() for k in ("confidence", "probab", "_lo", "_hi")) for c in extra):
        note = ('<p class="note">No confidence column in this analysis: the class is the cut of '
                'max d/R_eq at the asymmetry threshold.</p>')
    return _table(particles[[c for c in keys + extra if c in particles.columns]]) + note


def _fit_section(particles, results_dir, name) -> str:
    cols = [c for c in particles.columns if c.startswith("fit_")]
    if not cols or particles["fit_model"].isna().all():
        return ('<p class="note">No fit in these results (run <code>asymflux fit DATASET --all '
                '--out RESULTS</code>).</p>')
    show = pd.DataFrame({"particle_id": particles["particle_id"].to_numpy()})

    def pm(col):
        v = particles[col].to_numpy()
        se = particles[f"{col}_se"].to_numpy() if f"{col}_se" in particles else [np.nan] * len(v)
        return [("" if pd.isna(a) else f"{a:.4g}" + ("" if pd.isna(b) else f" ± {b:.2g}"))
                if not isinstance(a, str) else a for a, b in zip(v, se, strict=True)]

    for col in cols:
        if col.endswith("_se") or particles[col].isna().all():
            continue
        show[col.removeprefix("fit_")] = pm(col) if pd.api.types.is_numeric_dtype(particles[col]) \
            else particles[col].fillna("").to_numpy()
    method = ""
    prov = Path(results_dir) / "fits.provenance.json"
    if prov.is_file():
        try:
            method = json.loads(prov.read_text()).get("extra", {}).get("uncertainty_method", "")
        except (OSError, ValueError):
            method = ""
    text = f'<p class="note">Standard errors (*_se): {html.escape(method)}</p>' if method else ""
    return _table(show) + text


def _provenance_block(record, results_dir) -> str:
    parts = [f"<h3>This report</h3><pre>{html.escape(json.dumps(record, indent=2, default=str))}</pre>"]
    for f in sorted(Path(results_dir).glob("*provenance.json")):
        try:
            text = json.dumps(json.loads(f.read_text(encoding="utf-8")), indent=2)
        except (OSError, ValueError):
            continue
        parts.append(f"<h3>{html.escape(f.name)} (the results)</h3><pre>{html.escape(text)}</pre>")
    return "".join(parts)


def dataset_report(name, particles, timeseries, labels, *, results_dir, provenance_record,
                   dataset=None) -> str:
    """The HTML text of one dataset's report.

    Parameters
    ----------
    name : str
        The dataset's name (its rows of the tables).
    particles, timeseries : pandas.DataFrame
        Its rows of ``particles.csv`` and ``timeseries.csv``.
    labels : (n_row, n_col) int array or None
        Its labels (``masks/<name>.tif``).
    results_dir : path-like
        The analyze output (for the fits' method and the provenance files in it).
    provenance_record : dict
        The report's own provenance (:func:`asymflux.provenance.provenance`).
    dataset : asymflux.io.Dataset, optional
        The dataset itself: thumbnails of its frames and kymographs.
    """
    from . import analysis

    pids = [int(p) for p in sorted(particles["particle_id"].unique())]
    analyses = {}
    if dataset is not None and labels is not None:
        for pid in pids:
            try:
                analyses[pid] = analysis.analyze_dataset_particle(dataset, pid, masks=labels)
            except ValueError:
                continue
    body = {
        "particles": (_thumbnails(labels, analyses, pids) if labels is not None else
                      '<p class="note">no labels image in the results</p>')
        + _table(particles[[c for c in ("particle_id", "area_um2", "r_eq_um", "com_row", "com_col")
                            if c in particles.columns]]),
        "flags": _flag_summary(particles, timeseries),
        "offset": _offset_plot(timeseries, pids),
        "kymographs": _kymographs(analyses, pids),
        "classification": _classification(particles),
        "fit": _fit_section(particles, results_dir, name),
        "provenance": _provenance_block(provenance_record, results_dir),
    }
    toc = "".join(f'<li><a href="#{sid}">{html.escape(t)}</a></li>' for sid, t in SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{html.escape(t)}</h2>{body[sid]}</section>'
                       for sid, t in SECTIONS)
    n_frames = int(timeseries["frame"].nunique()) if "frame" in timeseries.columns else 0
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>asymflux report: {html.escape(name)}</title><style>{_CSS}</style></head>"
            f"<body><h1>asymflux report: {html.escape(name)}</h1>"
            f"<p>{len(pids)} particle(s), {n_frames} frame(s); results: "
            f"{html.escape(str(results_dir))}; made {html.escape(provenance_record.get('created_utc', ''))} "
            f"with asymflux {html.escape(str(provenance_record.get('versions', {}).get('asymflux', '')))}"
            f"</p><ul>{toc}</ul>{sections}</body></html>\n")


def write_reports(results_dir, out_dir, *, datasets=(), options=None, progress=False) -> list[Path]:
    """Write ``out_dir/<dataset>.html`` for every dataset of an analyze output, and
    ``out_dir/provenance.json``, in one transaction (:func:`asymflux._atomic.atomic_folder`).

    ``datasets``: dataset paths (folders or stacks) to draw frames and kymographs from,
    matched to the results by name; default those named in the results'
    ``provenance.json`` that still exist. Returns the HTML files written."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from . import io
    from ._atomic import atomic_folder
    from .analysis import dataset_name
    from .provenance import provenance, to_json

    results_dir = Path(results_dir)
    pfile, tfile = results_dir / "particles.csv", results_dir / "timeseries.csv"
    for f in (pfile, tfile):
        if not f.is_file():
            raise ValueError(f"{f} does not exist (run `asymflux analyze ... --out {results_dir}` first)")
    particles, timeseries = pd.read_csv(pfile), pd.read_csv(tfile)
    for col in ("dataset", "particle_id"):
        for f, t in ((pfile, particles), (tfile, timeseries)):
            if col not in t.columns:
                raise ValueError(f"{f} has no column {col!r}")
    paths = [Path(p) for p in datasets]
    if not paths and (results_dir / "provenance.json").is_file():
        try:
            opts = json.loads((results_dir / "provenance.json").read_text()).get("options", {})
            paths = [Path(p) for p in opts.get("datasets", []) if Path(p).exists()]
        except (OSError, ValueError):
            paths = []
    by_name = {}
    for p in paths:
        ds = io.read_dataset(p)
        by_name[dataset_name(ds)] = ds
    inputs = [pfile, tfile, *sorted((results_dir / "masks").glob("*.tif")),
              *sorted(results_dir.glob("*provenance.json")), *paths]
    names = list(dict.fromkeys(particles["dataset"].astype(str)))
    record = provenance("report", inputs=inputs, options=options or {},
                        outputs=[Path(out_dir) / f"{n}.html" for n in names])
    written = []
    with atomic_folder(out_dir) as tmp:
        for name in names:
            mfile = results_dir / "masks" / f"{name}.tif"
            labels = np.asarray(io.read_masks(mfile)) if mfile.is_file() else None
            text = dataset_report(name, particles[particles["dataset"].astype(str) == name],
                                  timeseries[timeseries["dataset"].astype(str) == name], labels,
                                  results_dir=results_dir, provenance_record=record,
                                  dataset=by_name.get(name))
            (tmp / f"{name}.html").write_text(text, encoding="utf-8")
            written.append(Path(out_dir) / f"{name}.html")
            if progress:
                print(f"  {name}: {len(text) / 1e6:.1f} MB", flush=True)
        (tmp / "provenance.json").write_text(to_json(record), encoding="utf-8")
    return written
