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

import numpy as np

from fastnet.inputs import PIXEL_MAX

IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
GZIP_MAGIC = b"\x1f\x8b"
N_CLASSES = 10


class DataError(ValueError):
    """A data file that cannot be used; the message is one line naming the file."""


# ----------------------------------------------------------------------------- IDX


def read_idx(path):
    """The array stored in an IDX file (gzip-compressed or raw), as uint8."""
    with open(path, "rb") as f:
        raw = f.read()
    return parse_idx(raw, str(path))


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
        raise DataError(
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


def read_csv(source, name, n_pixels=784, progress=None, chunk_rows=5000):
    """(images (N, n_pixels) uint8, labels (N,) uint8 or None) from an MNIST CSV.

    ``source`` is a path or a binary file object. Each row is a label followed by the pixels, or
    the pixels alone (an unlabeled file such as Kaggle's test.csv); the first row may be a header.
    ``progress`` is called with the number of rows read after each chunk.
    """
    head = _first_line(source)
    if head is None:
        raise DataError(f"{name}: the file is empty")
    fields = head.split(",")
    has_header = not _is_number(fields[0])
    n_cols = len(fields)
    if n_cols not in (n_pixels, n_pixels + 1):
        raise DataError(
            f"{name}: line 1 has {n_cols} columns, expected {n_pixels + 1} (label + {n_pixels} pixels) "
            f"or {n_pixels} (pixels only)"
        )
    labeled = n_cols == n_pixels + 1
    import pandas as pd  # here, not at the top: loading from the cache should not pay for pandas

    try:
        reader = pd.read_csv(
            source, header=None, skiprows=1 if has_header else 0, chunksize=chunk_rows,
            skip_blank_lines=True, names=range(n_cols), engine="c", low_memory=False,
            keep_default_na=False, na_values=[""],  # only empty cells are missing; 'nan' is text
        )
        chunks, first_line = [], 2 if has_header else 1
        for chunk in reader:
            chunks.append(_checked_chunk(chunk, name, first_line, labeled))
            first_line += len(chunk)
            if progress:
                progress(len(chunk))
    except pd.errors.ParserError as exc:
        raise DataError(f"{name}: {_parser_message(exc)}") from None
    except (UnicodeDecodeError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{name}: unreadable ({exc})") from None
    table = np.concatenate(chunks) if chunks else np.zeros((0, n_cols), np.uint8)
    if len(table) == 0:
        raise DataError(f"{name}: a header but no data rows")
    if labeled:
        return np.ascontiguousarray(table[:, 1:]), np.ascontiguousarray(table[:, 0])
    return table, None


def _first_line(source):
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        with open(source, "rb") as f:
            line = f.readline()
    else:
        pos = source.tell()
        line = source.readline()
        source.seek(pos)
    line = line.decode("utf-8", errors="replace").strip()
    return line or None


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _checked_chunk(chunk, name, first_line, labeled):
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
            raise DataError(f"{name}: line {first_line + r}, {_column(c, labeled)}: {what}")
        values = numeric
    limit = np.full(values.shape[1], PIXEL_MAX)
    if labeled:
        limit[0] = N_CLASSES - 1
    bad = (values < 0) | (values > limit)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        kind = "label" if (labeled and c == 0) else "pixel"
        raise DataError(
            f"{name}: line {first_line + r}, {_column(c, labeled)}: {kind} {values[r, c]:g} "
            f"is outside 0-{limit[c]}"
        )
    return values.astype(np.uint8)


def _column(c, labeled):
    if labeled:
        return "column 1 (label)" if c == 0 else f"column {c + 1} (pixel {c - 1})"
    return f"column {c + 1} (pixel {c})"


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
