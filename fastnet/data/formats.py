"""Reading and writing MNIST's file formats: IDX (gzip or raw) and CSV (label first, optional header).

Every problem with a file raises :class:`DataError` (a ValueError) with one line naming the file
and, for CSV, the line and column, so the CLI can print it as it is.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import zlib
from typing import NamedTuple

import numpy as np

from fastnet.inputs import PIXEL_MAX

IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
GZIP_MAGIC = b"\x1f\x8b"
N_CLASSES = 10
# The official IDX file names (images, labels) of each split.
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataError(ValueError):
    """A data file that cannot be used; the message is one line naming the file."""


# ----------------------------------------------------------------------------- IDX


def read_idx(path):
    """The array stored in an IDX file (gzip-compressed or raw), as uint8."""
    with open(path, "rb") as f:
        raw = f.read()
    return parse_idx(raw, str(path))


KNOWN_KINDS = {  # leading bytes of files people point fastnet at by mistake
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"BM": "a BMP image",
    b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image", b"PK\x03\x04": "a zip archive (a saved model?)",
    b"%PDF": "a PDF document",
}


def file_kind(head):
    """What a file is, judged by its first bytes, when it is one of KNOWN_KINDS; else None."""
    return next((kind for magic, kind in KNOWN_KINDS.items() if head.startswith(magic)), None)


def parse_idx(raw, name):
    """Parse IDX bytes (gzip or raw) holding unsigned bytes; ``name`` is used in errors."""
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{name}: damaged or truncated gzip file ({exc})") from None
    if len(raw) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        kind = file_kind(raw)
        raise DataError(
            f"{name}: {kind}, not an MNIST IDX or CSV file" if kind else
            f"{name}: not an MNIST IDX file (magic number 0x{raw[:4].hex()}, "
            f"expected 0x{LABEL_MAGIC:08x} for labels or 0x{IMAGE_MAGIC:08x} for images)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: header cut short")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataError(
            f"{name}: header says {'x'.join(map(str, dims))} = {expected} bytes of data, "
            f"file has {len(raw) - header}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def idx_bytes(array):
    """The uncompressed IDX encoding of a uint8 array of labels (N,) or images (N, 28, 28)."""
    magic = LABEL_MAGIC if array.ndim == 1 else IMAGE_MAGIC
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def check_labels_file(labels, name):
    if labels.size and labels.max() >= N_CLASSES:
        raise DataError(f"{name}: label {int(labels.max())} is outside 0-{N_CLASSES - 1}")


# ----------------------------------------------------------------------------- CSV


# Field separators read: commas (the seed's and Kaggle's files), semicolons (spreadsheets in many
# locales) and tabs. The first line decides which one a file uses.
DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}
# A header column with one of these names (any case) holds the labels, wherever it stands.
LABEL_NAMES = {"label", "labels", "class", "digit", "target", "y"}
UTF8_BOM = b"\xef\xbb\xbf"


class CsvLayout(NamedTuple):
    """What the first non-blank line of an MNIST CSV says about the file."""

    skip_rows: int  # raw lines before the data: leading blank lines, and the header if any
    delimiter: str
    n_cols: int
    label_col: int | None  # index of the label column, None for pixels only


def read_csv(source, name, n_pixels=784, progress=None, chunk_rows=5000):
    """(images (N, n_pixels) uint8, labels (N,) uint8 or None) from an MNIST CSV.

    ``source`` is a path (gzip-compressed when it ends in ``.gz``) or a binary file object. Each
    row is a label followed by the pixels, or the pixels alone (an unlabeled file such as Kaggle's
    test.csv); the first row may be a header, which then names the label column wherever it is.
    ``progress`` is called with the number of rows read after each chunk.
    """
    layout = csv_layout(source, name, n_pixels)
    import pandas as pd  # here, not at the top: loading from the cache should not pay for pandas

    try:
        reader = pd.read_csv(
            source, header=None, skiprows=layout.skip_rows, chunksize=chunk_rows,
            sep=layout.delimiter, skip_blank_lines=True, names=range(layout.n_cols), engine="c",
            low_memory=False, keep_default_na=False, na_values=[""],  # only empty cells are missing
            compression=_compression(source), encoding="utf-8",
        )
        chunks, first_line = [], layout.skip_rows + 1
        for chunk in reader:
            chunks.append(_checked_chunk(chunk, name, first_line, layout.label_col))
            first_line += len(chunk)
            if progress:
                progress(len(chunk))
    except pd.errors.ParserError as exc:
        raise DataError(f"{name}: {_parser_message(exc)}") from None
    except (UnicodeDecodeError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{name}: unreadable ({exc})") from None
    table = np.concatenate(chunks) if chunks else np.zeros((0, layout.n_cols), np.uint8)
    if len(table) == 0:
        raise DataError(f"{name}: a header but no data rows")
    if layout.label_col is None:
        return table, None
    return np.ascontiguousarray(np.delete(table, layout.label_col, axis=1)), \
        np.ascontiguousarray(table[:, layout.label_col])


def csv_layout(source, name, n_pixels=784):
    """The :class:`CsvLayout` of an MNIST CSV, or DataError saying what does not fit."""
    blank, head = _first_line(source, name)
    if head is None:
        raise DataError(f"{name}: the file is empty")
    delimiter = max(DELIMITERS, key=head.count)
    fields = [f.strip().strip('"').strip() for f in head.split(delimiter)]
    n_cols = len(fields)
    if n_cols not in (n_pixels, n_pixels + 1):
        seps = "" if n_cols > 1 else " (fields are separated by commas, semicolons or tabs)"
        raise DataError(
            f"{name}: line {blank + 1} has {n_cols} column{'s' if n_cols != 1 else ''}{seps}, expected "
            f"{n_pixels + 1} (label + {n_pixels} pixels) or {n_pixels} (pixels only)"
        )
    has_header = not all(_is_number(f) for f in fields if f)
    label_col = 0 if n_cols == n_pixels + 1 else None
    if has_header:
        named = [i for i, f in enumerate(fields) if f.lower() in LABEL_NAMES]
        if len(named) > 1:
            raise DataError(f"{name}: the header names {len(named)} label columns "
                            f"({', '.join(fields[i] for i in named)})")
        if named and n_cols == n_pixels:
            raise DataError(f"{name}: the header names a label column ({fields[named[0]]!r}) but the "
                            f"file has only {n_cols} columns, one short of label + {n_pixels} pixels")
        if named:
            label_col = named[0]
        elif label_col is not None and _looks_like_pixel(fields[0]):
            raise DataError(f"{name}: {n_cols} columns but none is named 'label' in the header, "
                            f"so the label column cannot be told from the pixels")
    return CsvLayout(blank + has_header, delimiter, n_cols, label_col)


def _first_line(source, name):
    """(number of blank lines before it, the first non-blank line as text) or (n, None)."""
    def scan(f):
        blank = 0
        for raw in f:
            if blank == 0 and raw.startswith(UTF8_BOM):  # pandas skips it too
                raw = raw[len(UTF8_BOM):]
            text = raw.decode("utf-8", errors="replace").strip()
            if text:
                return blank, text
            blank += 1
        return blank, None

    try:
        if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
            opener = gzip.open if _compression(source) == "gzip" else open
            with opener(source, "rb") as f:
                return scan(f)
        pos = source.tell()
        try:
            return scan(source)
        finally:
            source.seek(pos)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{name}: unreadable ({exc})") from None


def _compression(source):
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        return "gzip" if str(source).lower().endswith(".gz") else None
    return None


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _looks_like_pixel(name):
    """Header names of pixel columns: pixel0, 1x1, px12, 28x28 ..."""
    return bool(re.fullmatch(r"(pixel|px|p)?_?\d+([x_]\d+)?", name.lower()))


def _checked_chunk(chunk, name, first_line, label_col):
    """The chunk as uint8, or DataError naming the first bad cell's line and column."""
    import pandas as pd

    values = chunk.to_numpy()
    if values.dtype.kind not in "iu":
        numeric = chunk.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numeric) | (numeric != np.round(numeric))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            cell = chunk.iat[r, c]
            what = "an empty cell" if pd.isna(cell) else f"{str(cell)!r} is not a whole number"
            raise DataError(f"{name}: line {first_line + r}, {_column(c, label_col)}: {what}")
        values = numeric
    limit = np.full(values.shape[1], PIXEL_MAX)
    if label_col is not None:
        limit[label_col] = N_CLASSES - 1
    bad = (values < 0) | (values > limit)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        kind = "label" if c == label_col else "pixel"
        raise DataError(
            f"{name}: line {first_line + r}, {_column(c, label_col)}: {kind} {values[r, c]:g} "
            f"is outside 0-{limit[c]}"
        )
    return values.astype(np.uint8)


def _column(c, label_col):
    if c == label_col:
        return f"column {c + 1} (label)"
    pixel = c - (label_col is not None and c > label_col)
    return f"column {c + 1} (pixel {pixel})"


def _parser_message(exc):
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else "malformed CSV"
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:  # pandas numbers the lines of the file itself, header included
        return f"line {m.group(2)} has {m.group(3)} columns, expected {m.group(1)}"
    return text


def csv_text(images, labels=None, header=True):
    """MNIST CSV text (label first when given), as the seed notebooks' files are laid out."""
    table = images if labels is None else np.column_stack([labels, images])
    buf = io.StringIO()
    if header:
        cols = ([] if labels is None else ["label"]) + [f"pixel{i}" for i in range(images.shape[1])]
        buf.write(",".join(cols) + "\n")
    np.savetxt(buf, table, fmt="%d", delimiter=",")
    return buf.getvalue()
