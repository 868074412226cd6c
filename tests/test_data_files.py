"""Loading a user's .npy / .csv points: every bad file is a clear error (issue 11 item 9), and
property tests: any finite real (n, d) array loads exactly as float32; anything else is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bezkit.data import get_sampler
from bezkit.data.toy2d import load_points

F32_MAX = float(np.finfo(np.float32).max)
files = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_an_empty_npy_is_a_clear_error(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.npy is empty"):
        load_points(tmp_path / "empty.npy")


def test_a_truncated_npy_is_a_clear_error(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((100, 2)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:200])
    with pytest.raises(ValueError, match=r"cannot read data file .*t.npy as .npy"):
        load_points(tmp_path / "t.npy")


def test_an_npy_with_no_rows_is_refused(tmp_path):
    np.save(tmp_path / "none.npy", np.zeros((0, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="holds no points"):
        load_points(tmp_path / "none.npy")


def test_complex_points_are_refused_not_truncated(tmp_path):
    np.save(tmp_path / "z.npy", np.array([[1 + 2j, 3 - 1j]]))
    with pytest.raises(TypeError, match="complex numbers"):
        load_points(tmp_path / "z.npy")


def test_values_beyond_float32_are_refused_not_made_inf(tmp_path):
    np.save(tmp_path / "big.npy", np.array([[0.0, 1.0], [1e39, 0.0]]))
    with pytest.raises(ValueError, match=r"beyond float32's range .* row 1"):
        load_points(tmp_path / "big.npy")


def test_a_folder_is_not_reported_as_missing(tmp_path):
    (tmp_path / "pts.npy").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        load_points(tmp_path / "pts.npy")


def test_empty_and_header_only_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_points(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("x,y\n")
    with pytest.raises(ValueError, match="header but no rows"):
        load_points(tmp_path / "h.csv")
    (tmp_path / "w.csv").write_text("1,2\n3,abc\n")
    with pytest.raises(ValueError, match="as CSV numbers"):
        load_points(tmp_path / "w.csv")


def test_booleans_and_strings_are_refused(tmp_path):
    np.save(tmp_path / "b.npy", np.ones((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="must hold numbers"):
        load_points(tmp_path / "b.npy")
    np.save(tmp_path / "s.npy", np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="must hold numbers"):
        load_points(tmp_path / "s.npy")


finite_f32 = st.floats(
    min_value=-F32_MAX, max_value=F32_MAX, allow_nan=False, allow_infinity=False, width=32
)


@st.composite
def finite_real_arrays(draw):
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int32, np.int64]))
    if np.issubdtype(dtype, np.floating):
        elements = hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False)
        if dtype == np.float64:
            elements = finite_f32 | st.floats(-1e6, 1e6)
    else:
        elements = hnp.from_dtype(np.dtype(dtype))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=20))
    return draw(hnp.arrays(dtype=dtype, shape=shape, elements=elements))


@files
@given(arr=finite_real_arrays())
def test_any_finite_real_array_loads_exactly(tmp_path_factory, arr):
    folder = tmp_path_factory.mktemp("prop")
    np.save(folder / "p.npy", arr)
    loaded = load_points(folder / "p.npy")
    assert tuple(loaded.shape) == arr.shape
    np.testing.assert_array_equal(loaded.numpy(), arr.astype(np.float32))
    if arr.shape[1] == 2:
        assert get_sampler(str(folder / "p.npy")).sample(5).shape == (5, 2)


@files
@given(
    arr=hnp.arrays(
        dtype=np.float64,
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=10),
        elements=st.floats(min_value=-1e6, max_value=1e6, width=32),
    ),
    header=st.booleans(),
)
def test_any_finite_csv_loads(tmp_path_factory, arr, header):
    folder = tmp_path_factory.mktemp("csv")
    path = folder / "p.csv"
    lines = ["a" + ",b" * (arr.shape[1] - 1)] if header else []
    lines += [",".join(repr(float(v)) for v in row) for row in arr]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_points(path)
    np.testing.assert_array_equal(loaded.numpy(), arr.astype(np.float32))


@files
@given(
    arr=hnp.arrays(
        dtype=np.float64,
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=10),
        elements=st.floats(allow_nan=True, allow_infinity=True),
    ).filter(lambda a: not (np.isfinite(a).all() and (np.abs(a) <= F32_MAX).all()))
)
def test_non_finite_or_out_of_range_arrays_are_refused(tmp_path_factory, arr):
    folder = tmp_path_factory.mktemp("bad")
    np.save(folder / "p.npy", arr)
    with pytest.raises(ValueError, match=r"NaN or inf|beyond float32"):
        load_points(folder / "p.npy")


@files
@given(
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4).filter(
        lambda s: len(s) != 2 or 0 in s
    )
)
def test_arrays_that_are_not_n_by_d_are_refused(tmp_path_factory, shape):
    folder = tmp_path_factory.mktemp("shape")
    np.save(folder / "p.npy", np.zeros(shape))
    with pytest.raises(ValueError, match=r"\(n, d\) array|no points"):
        load_points(folder / "p.npy")


@pytest.mark.parametrize("header", ["", "x,y\n"])
def test_a_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path, header):
    """Excel's "CSV UTF-8" starts the file with U+FEFF: the first row is data, not a header."""
    rows = np.arange(600, dtype=np.float32).reshape(300, 2) / 7
    text = header + "".join(f"{a!r},{b!r}\n" for a, b in rows.tolist())
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    pts = load_points(path)
    assert pts.shape == (300, 2)
    np.testing.assert_array_equal(pts.numpy(), rows)


def test_a_csv_after_blank_lines_keeps_every_row(tmp_path):
    (tmp_path / "b.csv").write_text("\n\n1,2\n\n3,4\n")
    np.testing.assert_array_equal(load_points(tmp_path / "b.csv").numpy(), [[1, 2], [3, 4]])


def test_a_csv_that_is_not_text_is_a_clear_error(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe1,2\n\x80\x81")
    with pytest.raises(ValueError, match=r"bin\.csv.*UTF-8"):
        load_points(tmp_path / "bin.csv")


def test_an_npz_named_npy_is_a_clear_error(tmp_path):
    path = tmp_path / "pts.npy"
    with open(path, "wb") as fh:
        np.savez(fh, points=np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"pts\.npy is a \.npz archive.*points"):
        load_points(path)
