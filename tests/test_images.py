"""Image preparation (fastnet.images) on hand-made pictures whose size and centre are known."""

import numpy as np
import pytest

from fastnet.images import (BOX, FIELD, BlankImage, centre_of_mass, ink_box, prepare_digit, resample_matrix,
                            resize, scaled_size)


def canvas(height, width, paper=255, ink=0, boxes=(), dtype=np.uint8):
    """A picture of ``paper`` with each (top, bottom, left, right) box filled with ``ink``."""
    picture = np.full((height, width), paper, dtype)
    for top, bottom, left, right in boxes:
        picture[top:bottom, left:right] = ink
    return picture


def expected_field(top, bottom, left, right):
    field = np.zeros((FIELD, FIELD), np.uint8)
    field[top:bottom, left:right] = 255
    return field


def test_a_dark_bar_on_white_is_inverted_cropped_scaled_to_20_and_centred():
    """100 x 50 pixels of ink, far off-centre on a 300 x 400 page: 20 x 10 in the field. A uniform
    bar's centre of mass is its middle, (9.5, 4.5) within it, so it lands at rows 5-24, columns
    10-19: its centre of mass on pixel (14, 14) to the nearest whole pixel, rounding up."""
    prepared = prepare_digit(canvas(300, 400, boxes=[(20, 120, 300, 350)]))
    assert prepared.dtype == np.uint8 and prepared.shape == (FIELD, FIELD)
    np.testing.assert_array_equal(prepared, expected_field(5, 25, 10, 20))
    assert centre_of_mass(prepared.astype(float)) == (14.5, 14.5)


def test_the_same_shape_anywhere_at_any_size_and_either_polarity_gives_the_same_digit():
    reference = prepare_digit(canvas(300, 400, boxes=[(20, 120, 300, 350)]))
    others = [
        canvas(300, 400, paper=0, ink=255, boxes=[(20, 120, 300, 350)]),  # white on black: not inverted
        canvas(60, 60, boxes=[(5, 45, 30, 50)]),  # 40 x 20, another place
        canvas(1000, 700, boxes=[(600, 1000, 0, 200)]),  # 400 x 200, touching the edges of the page
        canvas(30, 40, paper=0, ink=255, boxes=[(0, 20, 0, 10)]),  # already 20 x 10, in a corner
    ]
    for picture in others:
        np.testing.assert_array_equal(prepare_digit(picture), reference)


def test_a_wide_shape_keeps_its_aspect_ratio():
    """90 wide, 30 tall: 20 wide and 30 * 20 / 90 = 6.67 -> 7 tall."""
    prepared = prepare_digit(canvas(200, 200, boxes=[(100, 130, 10, 100)]))
    top, bottom, left, right = ink_box(prepared)
    assert (bottom - top, right - left) == (7, BOX)
    assert (top, left) == (11, 5)  # centres of mass 3 and 9.5 within it, moved to 14


def test_the_centre_of_mass_is_centred_not_the_box():
    """A 'digit' with its weight low: a stem and a wide foot (an upside-down T). Its box is 20 x 16,
    its centre of mass on row 12.2 of it rather than 9.5, so it sits high in the field: rows 2-21,
    where a box centred would be on rows 4-23."""
    picture = canvas(400, 400, boxes=[(100, 280, 185, 215), (280, 300, 120, 280)])
    prepared = prepare_digit(picture)
    top, bottom, left, right = ink_box(prepared)
    assert (bottom - top, right - left) == (BOX, 16)
    row, col = centre_of_mass(prepared.astype(float))
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5
    assert top == 2, "the box should sit high: its centre of mass is low"


def test_a_lopsided_digit_is_moved_in_rather_than_cut_off():
    """A thin 180-pixel line with a heavy 20 x 20 block at its end: centring the centre of mass
    would push the line's start out of the field, so the digit is moved in as little as needed."""
    picture = canvas(100, 300, boxes=[(49, 50, 50, 230), (40, 60, 230, 250)])
    prepared = prepare_digit(picture)
    top, bottom, left, right = ink_box(prepared)
    assert right - left == BOX and left == 0  # all of it, against the left edge
    assert prepared[:, 0].any()


@pytest.mark.parametrize("convert", [
    lambda p: p.astype(np.uint16) * 257,  # 16 bits, full range
    lambda p: p.astype(np.int64),  # np.array(picture, int): still 0-255
    lambda p: p.astype(np.int32) * 257,  # Pillow's 32-bit mode holding 16-bit values
    lambda p: p / 255.0,  # floats in [0, 1]
    lambda p: (p / 255.0).astype(np.float32),
    lambda p: p > 127,  # bilevel
])
def test_gray_levels_of_any_type_give_the_same_digit(convert):
    picture = canvas(120, 90, boxes=[(10, 110, 20, 40), (10, 30, 20, 80)])  # a 7-ish shape
    np.testing.assert_array_equal(prepare_digit(convert(picture)), prepare_digit(picture))


def test_a_photo_like_page_with_noise_and_uneven_light_gives_the_clean_digit():
    rng = np.random.default_rng(0)
    light = np.linspace(180, 205, 400)[None, :]  # a page lit from one side
    page = light + rng.normal(0, 5, (300, 400))  # and sensor noise
    page[50:200, 100:175] = 45 + rng.normal(0, 5, (150, 75))  # dark ink, 150 x 75
    prepared = prepare_digit(np.clip(page, 0, 255).astype(np.uint8))
    top, bottom, left, right = ink_box(prepared)
    assert (bottom - top, right - left) == (BOX, 10)  # the ink's box, no paper in it
    row, col = centre_of_mass(prepared.astype(float))
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5
    assert prepared[top:bottom, left:right].min() >= 200  # the ink evenly strong, noise or not


def test_faint_marks_do_not_stretch_the_box():
    """A stray speck weaker than the threshold of the strongest ink is background."""
    picture = canvas(200, 200, boxes=[(50, 150, 80, 130)])
    picture[5, 5] = 235  # a light smudge in a corner: 20 / 255 of ink against the digit's 255
    np.testing.assert_array_equal(prepare_digit(picture), prepare_digit(canvas(200, 200, boxes=[(50, 150, 80, 130)])))


@pytest.mark.parametrize("picture", [
    np.full((50, 40), 255, np.uint8),  # white paper
    np.zeros((28, 28), np.uint8),  # black screen
    np.full((30, 30), 128, np.uint8) + np.random.default_rng(0).integers(0, 4, (30, 30)).astype(np.uint8),
    np.ones((1, 1)),
])
def test_a_blank_picture_is_refused_as_blank(picture):
    with pytest.raises(BlankImage, match=r"^no digit found: the picture is blank"):
        prepare_digit(picture)


@pytest.mark.parametrize("picture, message", [
    (np.zeros((0, 5), np.uint8), r"^empty picture \(5 x 0 pixels\)$"),
    (np.zeros((4, 4, 3), np.uint8), "expected a 2-D grayscale picture"),
    (np.full((4, 4), np.nan), "NaN or infinite"),
])
def test_arrays_that_are_not_pictures_are_refused(picture, message):
    with pytest.raises(ValueError, match=message):
        prepare_digit(picture)


def test_a_single_dot_fills_the_box():
    prepared = prepare_digit(canvas(50, 50, boxes=[(10, 11, 40, 41)]))
    np.testing.assert_array_equal(prepared, expected_field(5, 25, 5, 25))


@pytest.mark.parametrize("n_in, n_out", [(100, 20), (20, 20), (7, 20), (1, 20), (20, 1), (333, 7)])
def test_resampling_weights_average_and_keep_constants(n_in, n_out):
    weights = resample_matrix(n_in, n_out)
    assert weights.shape == (n_out, n_in) and np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(resize(np.full((n_in, n_in), 0.7), n_out, n_out), 0.7)
    if n_in == n_out:
        np.testing.assert_array_equal(weights, np.eye(n_in))


def test_shrinking_averages_every_source_pixel():
    """A fine stripe pattern (1 on, 1 off) shrunk 5x is an even grey, not aliased stripes."""
    stripes = np.tile([1.0, 0.0], 50)[None, :].repeat(10, axis=0)
    shrunk = resize(stripes, 2, 20)
    np.testing.assert_allclose(shrunk, 0.5, atol=0.05)


@pytest.mark.parametrize("shape, expected", [((100, 50), (20, 10)), ((30, 90), (7, 20)), ((1, 1), (20, 20)),
                                             ((1000, 1), (20, 1)), ((5, 7), (14, 20))])
def test_scaled_size_keeps_the_aspect_ratio_with_the_longer_side_20(shape, expected):
    assert scaled_size(*shape) == expected
