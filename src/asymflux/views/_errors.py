"""What a page says about an error: one line, a label in words and the message (no class
name, no traceback; :func:`error_text`), and the switch that prints tracebacks to the
server's log (:func:`log_exception`). Panel-free."""

from __future__ import annotations

import os
import traceback


class DatasetSpecError(ValueError):
    """A dataset name, path or upload that cannot be used (the message says why)."""


_EXPECTED_ERRORS = ("DatasetError", "DatasetSpecError", "DatasetTooLarge", "AnalysisStopped")


#: The bold label an alert gives an error, in words (never a class name on the page).
_ERROR_LABELS = {"DatasetError": "Cannot use this dataset",
                 "DatasetSpecError": "Cannot open this",
                 "DatasetTooLarge": "Too large",
                 "AnalysisStopped": "Stopped",
                 "CurationError": "Cannot use this curation"}


def error_text(exc: BaseException, *, source=None, name_source=True) -> str:
    """One line for the page: a label in words and the message (no traceback, no class
    name). An error the readers did not word themselves (``OverflowError``, ``BadZipFile``,
    ...) names ``source`` (the dataset or file; ``name_source=False`` when the caller's text
    names it already) and says it was not expected."""
    msg = _without_class_names(" ".join(str(exc).split())) or "no details given"
    name = next((_ERROR_LABELS[c.__name__] for c in type(exc).__mro__
                 if c.__name__ in _ERROR_LABELS), "Unexpected error")
    if source is not None and not any(c.__name__ in _EXPECTED_ERRORS for c in type(exc).__mro__):
        src = str(source)
        if name_source and src not in msg:
            msg = f"{src}: {msg}"
        msg += (" (an unexpected error while reading or analysing it: check its files against "
                "docs/dataset-format.md)")
    return f"**{name}**: {msg}"


_CLASS_NAMES = (r"(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception|Warning)|BadZipFile|"
                r"LargeZipFile)|(?:zlib|struct|binascii)\.error")


def _without_class_names(msg: str) -> str:
    """A message without the exception class names a library put in it
    (``(TiffFileError: x)`` becomes ``(x)``, ``raised TiffFileError('x')`` ``raised 'x'``)."""
    import re

    msg = re.sub(rf"\b(?:{_CLASS_NAMES}): ", "", msg)
    msg = re.sub(rf"\b(?:{_CLASS_NAMES})\((.*?)\)", r"\1", msg)
    return re.sub(rf"\b(?:{_CLASS_NAMES})\b", "error", msg)


def log_exception(exc: BaseException) -> None:
    if os.environ.get("ASYMFLUX_DASHBOARD_DEBUG"):
        traceback.print_exception(exc)
