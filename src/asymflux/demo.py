"""``asymflux demo``: the model figures of the paper (Fig. 4, Fig. 5b) from built-in data,
with the paper's trends checked and printed."""

from __future__ import annotations

from pathlib import Path

from . import figures, plots
from ._atomic import atomic_folder, link_into

#: What ``asymflux demo`` writes into its folder.
DEMO_FILES = ("fig4.png", "fig5b.png", "fig5b.csv")


def is_demo_output(folder) -> bool:
    """True for a folder written by ``asymflux demo`` (it may be rewritten)."""
    return any((Path(folder) / n).is_file() for n in DEMO_FILES)


def _carry_others(old: Path, new: Path) -> None:
    for entry in old.iterdir():
        if entry.name not in DEMO_FILES:  # hidden entries too: the old folder is removed
            link_into(entry, new / entry.name)


def build_demo_data(*, progress: bool = True) -> list[str]:
    """Build (or find in the cache) every demo dataset, so the dashboards and notebooks open
    fast. Returns their names."""
    from tqdm.auto import tqdm

    from . import datasets

    names = datasets.list_datasets()
    for name in tqdm(names, desc="demo datasets", unit="dataset", disable=not progress):
        datasets.path(name)
    return names


def run(out_dir: Path, *, progress: bool = True, data: bool = True) -> int:
    """Write ``fig4.png``, ``fig5b.png`` and ``fig5b.csv`` into ``out_dir`` and build the demo
    datasets into the cache; return 0 when the paper's Fig. 5b trends hold, 1 otherwise.

    The three files appear together (the folder is replaced in one step; other files in it
    are kept)."""
    out_dir = Path(out_dir)
    if data:
        from . import datasets

        print(f"Demo datasets (cached in {datasets.cache_dir()}) ...", flush=True)
        build_demo_data(progress=progress)
    plots.use_backend("matplotlib")

    print("Fig. 4: θ maps at 5/10/15/20 min, 100 mA/g, four surfaces ...", flush=True)
    fig4 = figures.fig4_data(pixel_nm=25)
    fig4_plot = plots.fig4_theta_maps(fig4)

    print("Fig. 5b: Li extracted at surface occupancy 0.2, 50-400 mA/g ...", flush=True)
    table = figures.fig5b_data(progress=progress)
    with atomic_folder(out_dir, carry=_carry_others) as tmp:
        plots.save_png(fig4_plot, tmp / "fig4.png", fig_inches=2.4)
        table.to_csv(tmp / "fig5b.csv", index=False)
        plots.save_png(plots.fig5b_rate_capability(table), tmp / "fig5b.png", fig_inches=5)
    wide = table.pivot(index="rate_mA_g", columns="blocked", values="li_extracted")
    print(wide.to_string(float_format=lambda v: f"{v:.4f}"))

    checks = figures.fig5b_trend_checks(table)
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'FAILED'}] {text}")
    print(f"\nWrote {out_dir / 'fig4.png'}, {out_dir / 'fig5b.png'}, {out_dir / 'fig5b.csv'}")
    return 0 if all(ok for _, ok in checks) else 1
