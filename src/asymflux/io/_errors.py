"""The one error type of :mod:`asymflux.io`."""

from __future__ import annotations


class DatasetError(ValueError):
    """Bad or inconsistent input file / dataset.

    The message names the file (or argument) and the problem. Raised before anything is
    written: a failed read or write leaves the disk as it was. The message is one line:
    line breaks inside it (a parser's own multi-line reason) are folded into spaces.
    """

    def __init__(self, message="", *args):
        super().__init__(" ".join(str(message).split()), *args)
