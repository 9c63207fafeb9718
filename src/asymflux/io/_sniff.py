"""Tell a cycler file's kind from its first bytes, not its name."""

from __future__ import annotations

import zipfile
from pathlib import Path

from asymflux.io._errors import DatasetError

_NOT_CYCLER = {
    b"\x89HDF\r\n\x1a\n": "an HDF5 file",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"II+\x00": "a BigTIFF image",
    b"\x93NUMPY": "a NumPy .npy array",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"TDSm": "a LabVIEW TDMS file",
}


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise DatasetError(f"{path}: a damaged zip container ({e})") from e
    if any(n.startswith("xl/") for n in names):
        return "excel"
    if any(n.lower().endswith((".ndc", "step.xml", "testinfo.xml")) for n in names):
        return "neware-ndax"
    raise DatasetError(
        f"{path}: a zip archive that is neither a Neware .ndax nor an Excel workbook "
        f"(it holds {sorted(names)[:5]}); expected a cycler file"
    )


def _gzip_kind(path: Path) -> str:
    """A gzip-compressed text table (e.g. ``.bdf.gz``) is read as a CSV; anything else refused."""
    import gzip

    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(4096)
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: a damaged gzip file ({e})") from e
    if not head or b"\x00" in head:
        raise DatasetError(
            f"{path}: a gzip file that does not hold a text table (expected a compressed "
            "cycler CSV such as a Battery Data Format .bdf.gz)"
        )
    return "csv-gzip"


def sniff_echem(path: Path) -> str:
    """See :func:`asymflux.io.echem.echem_format`."""
    if not path.exists():
        raise DatasetError(f"{path}: no such cycler file")
    if not path.is_file():
        raise DatasetError(f"{path}: not a file (expected a cycler file such as .mpr, .nda, .csv)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e
    if not head:
        raise DatasetError(f"{path}: empty file (expected a cycler file)")
    if head.startswith(b"BIO-LOGIC MODULAR FILE"):
        return "biologic-mpr"
    if head.startswith(b"NEWARE"):
        return "neware-nda"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head[4:19] in (b"Standard Jet DB", b"Standard ACE DB"):
        return "arbin-res"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "excel"  # legacy .xls (OLE2)
    if head.startswith(b"PAR1"):
        return "parquet"  # e.g. the Battery Data Format's .bdf.parquet
    if head.startswith(b"\x1f\x8b"):
        return _gzip_kind(path)
    for magic, what in _NOT_CYCLER.items():
        if head.startswith(magic):
            raise DatasetError(f"{path}: this is {what}, not a cycler file")
    maccor_header = any(line.startswith(b"Tester") and b"Maccor" in line
                        for line in head.splitlines()[:20])
    if maccor_header and not head.startswith(b"Today's Date"):
        raise DatasetError(
            f"{path}: a Maccor export in a layout asymflux does not read (navani reads "
            "Maccor's text export whose first line starts with \"Today's Date\"); export the "
            "test that way, or as a CSV and read it with read_echem(path, columns={...})"
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16 text (Excel's "Unicode text", Windows tools): a text table
        return "csv"
    if b"\x00" in head:
        raise DatasetError(
            f"{path}: unknown binary file (expected BioLogic .mpr, Neware .nda/.ndax, "
            "Arbin .res, Excel, or a text export)"
        )
    from asymflux.io._gamry import is_explain

    if is_explain(head):
        return "gamry-dta"
    text = head.decode("cp1252", errors="replace")
    first = text.splitlines()[0] if text.splitlines() else ""
    if "EC-Lab ASCII FILE" in first or "BT-Lab ASCII FILE" in first:
        return "biologic-mpt"
    header = first.split("\t")
    if "time/s" in header and ({"Ewe/V", "<Ewe>/V", "<Ewe/V>", "Ecell/V"} & set(header)):
        return "biologic-mpt"  # EC-Lab export without its header block
    if first.strip() == "[Main]" or text.lstrip().startswith("[Main]"):
        raise DatasetError(
            f"{path}: an Ivium data file (.idf, its own settings-and-data layout), which "
            "asymflux does not read; export the measurement from IviumSoft as text (.txt: "
            "columns 'time /s', 'I /mA', 'E /V'), which navani reads"
        )
    if first.startswith("Today's Date"):
        return "maccor-txt"
    if {"time /s", "I /mA", "E /V"} <= {h.strip() for h in header}:
        return "ivium-txt"
    return "csv"
