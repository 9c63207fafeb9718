"""The output folder of a watch (``asymflux watch``), kept up to date as frames arrive:
:class:`LiveOutput` and the ``live.json`` record (:func:`live_status`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

__all__ = ["LiveOutput", "live_status"]


def live_status(live, state, **extra) -> dict:
    """``live.json``: the state of a watch (``running``, ``finished``), its source, the frames
    and particles measured so far, the time (UTC) and ``extra``."""
    return {"state": state, "source": str(live.movie.path), "frames": live.n_frames,
            "frames_with_capacity": int(live._cap_known[: live.n_frames].sum()),
            "particles": 0 if live.labels is None else int(np.count_nonzero(np.unique(live.labels))),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}


def _write(out, particles, timeseries, labels, name, status):
    """The whole set (tables, masks, ``live.json``) in one folder swap."""
    import tifffile

    from .._atomic import output_errors
    from ..analysis import ANALYZE_OUTPUTS, write_tables

    def extra(folder):
        if labels is not None:
            (folder / "masks").mkdir()
            tifffile.imwrite(folder / "masks" / f"{name}.tif",
                             labels.astype("uint16" if labels.max() < 65536 else "uint32"))
        (folder / "live.json").write_text(json.dumps(status, indent=2, default=float) + "\n",
                                          encoding="utf-8")

    with output_errors(out):
        write_tables(out, {"particles": particles, "timeseries": timeseries}, files=extra,
                     replaces=(*ANALYZE_OUTPUTS, "live.json"))


class LiveOutput:
    """DIR while watching, at a cost per update of O(new rows).

    The first update with particles writes the whole set (particles.csv, timeseries.csv,
    masks, live.json) in one folder swap. Later updates append the new frames' rows to
    timeseries.csv (one write of whole lines) and then replace live.json (its
    ``timeseries_rows``: the complete rows of timeseries.csv). The whole set is written again
    (sorted rows, capacities found since, particles.csv of the frames so far) at most every
    ``rewrite_s`` seconds and never sooner than ``cost_factor`` times the last rewrite's
    duration after it, so the O(rows) rewrites take a bounded share of the time (1/20), not
    O(rows) per frame; and at once when an update measured every frame again
    (:attr:`~asymflux.live.LiveUpdate.remeasured`: an ``"auto"`` correction switched on).
    """

    def __init__(self, out, *, rewrite_s=30.0, cost_factor=20.0):
        self.out = Path(out)
        self.rewrite_s = float(rewrite_s)
        self.cost_factor = float(cost_factor)
        self.rows = 0  # complete rows in timeseries.csv
        self.rewrites = 0
        self._last = None  # monotonic time of the last whole write
        self._cost = 0.0
        self._stale = False  # the files lag what is known (appended rows, capacities)

    def update(self, live, up) -> None:
        if not (up.changed or self._stale) or live.labels is None:
            return
        now = time.monotonic()
        due = self._last is None or now - self._last >= max(self.rewrite_s,
                                                          self.cost_factor * self._cost) \
            or getattr(up, "remeasured", False)  # every row so far changed: rewrite them
        if due:
            ts = live.timeseries
            _write(self.out, live.particles, ts, live.labels, live.name,
                   live_status(live, "running", timeseries_rows=len(ts)))
            self.rows, self._stale, self.rewrites = len(ts), False, self.rewrites + 1
            self._last = time.monotonic()
            self._cost = self._last - now
            return
        if not up.changed:
            return  # stale files wait for the next rewrite
        from .._atomic import output_errors, write_text_atomic

        with output_errors(self.out):
            if up.rows is not None and len(up.rows):
                data = up.rows.to_csv(index=False, header=False).encode("utf-8")
                fd = os.open(self.out / "timeseries.csv", os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, data)  # whole lines, one write
                finally:
                    os.close(fd)
                self.rows += len(up.rows)
            self._stale = True
            write_text_atomic(self.out / "live.json", json.dumps(
                live_status(live, "running", timeseries_rows=self.rows), indent=2,
                default=float) + "\n")

    def final(self, final, status, name) -> None:
        """The batch tables of the finished files, the whole set in one swap."""
        _write(self.out, final.particles, final.timeseries, final.labels,
               str(final.particles["dataset"].iloc[0]) if len(final.particles) else name,
               {**status, "timeseries_rows": len(final.timeseries)})
