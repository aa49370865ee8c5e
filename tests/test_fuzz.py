"""Property-based tests: random bytes, cells, shapes and dtypes never produce anything but a
result or the documented errors (DataError/ValueError/TypeError), and never crash the interpreter."""

import gzip
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnet
from fastnet.tolerances import TOLERANCES
from fastnet.data.formats import DataError, csv_text, parse_idx, read_csv
from tests.helpers import REFERENCE, backends_under_test

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_idx_parser_on_random_bytes(raw, compress):
    data = gzip.compress(raw) if compress else raw
    try:
        array = parse_idx(data, "fuzz.idx")
    except DataError as exc:
        assert str(exc).startswith("fuzz.idx: ")
    else:
        assert array.dtype == np.uint8 and array.ndim in (1, 3)


@FUZZ
@given(st.integers(1, 4), st.integers(0, 3), st.integers(0, 784), st.text(max_size=12))
def test_csv_with_one_random_cell(n_rows, row, col, cell):
    rng = np.random.default_rng(n_rows)
    images = rng.integers(0, 256, (n_rows, 784)).astype(np.uint8)
    labels = rng.integers(0, 10, n_rows).astype(np.uint8)
    lines = csv_text(images, labels, header=True).splitlines()
    row = min(row + 1, n_rows)  # a data line
    cells = lines[row].split(",")
    cells[col] = cell
    lines[row] = ",".join(cells)
    try:
        X, y = read_csv(io.BytesIO(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")), "fuzz.csv")
    except DataError as exc:
        assert str(exc).startswith("fuzz.csv: ") and "\n" not in str(exc)
    else:
        assert X.dtype == np.uint8 and X.shape[1] == 784 and y is not None and y.max() <= 9


@FUZZ
@given(st.binary(max_size=2000))
def test_csv_from_random_bytes(raw):
    try:
        read_csv(io.BytesIO(raw), "fuzz.csv")
    except DataError as exc:
        assert str(exc).startswith("fuzz.csv: ")


DTYPES = st.sampled_from([np.bool_, np.uint8, np.int8, np.uint16, np.int64, np.float16, np.float32,
                          np.float64, np.complex64, np.dtype("U3"), np.dtype("O")])
SMALL = (12, 4, 3)


def any_array(dtype):
    if dtype == np.dtype("O"):
        return st.just(np.array([[None] * 12], dtype=object))
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=14))


@FUZZ
@given(DTYPES.flatmap(any_array), st.sampled_from(backends_under_test()), st.integers(0, 12))
def test_public_api_on_random_arrays(X, backend, n_labels):
    be = fastnet.get_backend(backend)
    net = fastnet.Network.init(SMALL)
    y = np.arange(n_labels) % 3
    before = net.flat.copy()
    try:
        be.step(net, X, y, lr=0.1)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        np.testing.assert_array_equal(net.flat, before)  # refused input changes nothing
    else:
        assert X.ndim == 2 and X.shape == (n_labels, 12)
        assert np.isfinite(net.flat).all()
    try:
        probs = be.forward(net, X)
    except (ValueError, TypeError):
        pass
    else:
        np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)


@FUZZ
@given(st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64]).flatmap(
    lambda dt: hnp.arrays(dt, st.tuples(st.integers(1, 9), st.just(12)))))
def test_well_shaped_random_arrays_are_accepted_exactly_when_valid_and_backends_agree(X):
    y = np.arange(len(X)) % 3
    if X.dtype.kind == "f":
        valid = bool(np.all(np.isfinite(X)) and X.min() >= 0 and X.max() <= 1)
    else:
        valid = bool(X.min() >= 0 and X.max() <= 255)
    names = [REFERENCE] + [name for name in backends_under_test() if name != REFERENCE]
    results = []
    for name in names:
        net = fastnet.Network.init(SMALL)
        try:
            fastnet.get_backend(name).step(net, X, y, lr=0.1)
        except ValueError:
            results.append(None)
        else:
            results.append(net.flat)
    if not valid:
        assert all(r is None for r in results)
    else:
        for name, result in zip(names[1:], results[1:]):
            np.testing.assert_allclose(result, results[0], **TOLERANCES["float64"], err_msg=name)
