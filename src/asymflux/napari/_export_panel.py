"""The *Export* part of the curation dock widget: two file boxes and two buttons.

The buttons call :meth:`CurationWidget.export_table` /
:meth:`~CurationWidget.export_movie`; the work is done by :mod:`asymflux.export`
(no Qt). The file boxes (magicgui ``FileEdit``, a save dialog behind *Choose file*) say
where to write; left empty, the files go into the dataset folder
(:meth:`ExportPanel.table_path` / :meth:`ExportPanel.movie_path`).
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import Container, FileEdit, FloatSpinBox, PushButton

from asymflux.export import default_movie_suffix, movie_suffixes

__all__ = ["TABLE_NAME", "ExportPanel"]

#: File name of the curated particles table when no file is chosen (in the dataset folder).
TABLE_NAME = "curated_particles.csv"


def _chosen(edit: FileEdit) -> Path | None:
    value = edit.value
    return None if value is None or str(value) in ("", ".") else Path(value)


class ExportPanel(Container):
    """File boxes for the curated table and the particle movie, and their buttons.

    Parameters
    ----------
    owner : CurationWidget
        Whose ``export_table`` / ``export_movie`` the buttons run (through
        ``owner.run``, so that errors become notifications).
    """

    def __init__(self, owner):
        super().__init__(labels=True)
        self._owner = owner
        self.table_file = FileEdit(label="table file", mode="w", filter="*.csv")
        self.table_file.tooltip = f"CSV file; left empty: {TABLE_NAME} in the dataset folder"
        patterns = " ".join(f"*{s}" for s in movie_suffixes())
        self.movie_file = FileEdit(label="movie file", mode="w", filter=f"Movies ({patterns})")
        self.movie_file.tooltip = ("GIF/MP4: coloured like the dI layer; TIFF: the dI values. "
                                   "Left empty: particle_<id>_dI in the dataset folder")
        self.fps = FloatSpinBox(label="movie frames/s", value=5.0, min=0.5, max=60.0, step=0.5)
        row = Container(layout="horizontal", labels=False)
        for text, method in (("Export table", "export_table"),
                             ("Export movie", "export_movie")):
            button = PushButton(text=text)
            button.changed.connect(self._callback(method))
            row.append(button)
        self.extend([self.table_file, self.movie_file, self.fps, row])

    def _callback(self, method):
        def callback(*_):
            self._owner.run(getattr(self._owner, method))

        return callback

    def table_path(self, folder=None) -> Path:
        """The chosen table file, else ``folder / curated_particles.csv``."""
        chosen = _chosen(self.table_file)
        if chosen is not None:
            return chosen
        if folder is None:
            raise ValueError("choose a table file first (this stack is not in a dataset folder)")
        return Path(folder) / TABLE_NAME

    def movie_path(self, particle_id: int, folder=None) -> Path:
        """The chosen movie file, else ``folder / particle_<id>_dI.<mp4 or gif>``."""
        chosen = _chosen(self.movie_file)
        if chosen is not None:
            return chosen
        if folder is None:
            raise ValueError("choose a movie file first (this stack is not in a dataset folder)")
        return Path(folder) / f"particle_{int(particle_id)}_dI{default_movie_suffix()}"
