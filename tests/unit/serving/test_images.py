"""Request bodies to images: PNG and JSON accepted, anything else refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nercc.serving.images import image_to_png, parse_image


def test_png_round_trip_is_exact_to_eight_bits():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(1, 5, 7)) / 255.0
    parsed = parse_image(image_to_png(image), "image/png", (1, 5, 7))
    assert parsed.dtype == np.float32 and parsed.shape == (1, 5, 7)
    np.testing.assert_allclose(parsed, image, atol=1e-7)


def test_png_rgb_is_channels_first():
    image = np.zeros((3, 2, 4))
    image[1] = 1.0  # green
    parsed = parse_image(image_to_png(image), None, (3, 2, 4))
    np.testing.assert_array_equal(parsed[1], 1.0)
    np.testing.assert_array_equal(parsed[[0, 2]], 0.0)


@pytest.mark.parametrize("wrap", [lambda a: a, lambda a: {"image": a}])
def test_json_array_or_object(wrap):
    image = np.linspace(0, 1, 12).reshape(3, 4)
    body = json.dumps(wrap(image.tolist())).encode()
    parsed = parse_image(body, "application/json", (1, 3, 4))
    np.testing.assert_allclose(parsed[0], image, rtol=1e-6)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "image/png", "empty body"),
        (b"hello", "text/plain", "unsupported body (Content-Type 'text/plain')"),
        (b"[1, 2", "application/json", "not valid JSON"),
        (b"[0.5, 0.5]", "application/json", "2 or 3 dimensions, got 1"),
        (b"[[0.5, 0.5], [0.5]]", "application/json", "rectangular array of numbers"),
        (b"[[2.0, 0.5], [0.5, 0.5]]", "application/json", "in [0, 1], got [0.5, 2]"),
        (b"[[NaN, 0.5], [0.5, 0.5]]", "application/json", "non-finite"),
        (b'{"img": []}', "application/json", "must have the key 'image', got keys ['img']"),
        (
            b"[[0.5, 0.5], [0.5, 0.5]]",
            "application/json",
            "shape (1, 3, 4) or (3, 4), got (1, 2, 2)",
        ),
        (b"\x89PNG\r\n\x1a\nbroken", "image/png", "not a readable PNG image"),
    ],
)
def test_bad_bodies_raise_one_line(body, content_type, message):
    with pytest.raises(ValueError) as error:
        parse_image(body, content_type, (1, 3, 4))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_png_of_another_size_is_refused_not_resized():
    with pytest.raises(ValueError, match=r"must be 4x3 pixels \(width x height\), got 4x4"):
        parse_image(image_to_png(np.zeros((4, 4))), "image/png", (1, 3, 4))


def test_sixteen_bit_png_is_refused():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((3, 4), 40000, dtype=np.uint16)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="8 bits per channel, got mode 'I;16'"):
        parse_image(buffer.getvalue(), "image/png", (1, 3, 4))


def test_decompression_bomb_and_deep_json_are_bad_requests(monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4)  # a 3x4 image is then a "bomb"
    with pytest.raises(ValueError, match="not a readable PNG image"):
        parse_image(image_to_png(np.zeros((3, 4))), "image/png", (1, 3, 4))
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ValueError, match="not valid JSON|rectangular array"):
        parse_image(deep, "application/json", (1, 3, 4))


def test_empty_json_array_says_so():
    with pytest.raises(ValueError, match=r"the image is empty \(shape \(1, 0\)\)"):
        parse_image(b"[[]]", "application/json", (1, 3, 4))


@pytest.mark.parametrize("body", [b"[[NaN, NaN], [NaN, NaN]]", b"[[NaN, Infinity], [NaN, NaN]]"])
def test_an_all_nan_image_is_refused_without_a_warning(body):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "All-NaN slice" would be an exception here
        with pytest.raises(ValueError) as error:
            parse_image(body, "application/json", (1, 2, 2))
    assert str(error.value) == "pixel values must be finite and in [0, 1], got non-finite values"


def test_the_body_limit_is_the_callers():
    body = b"[[0.5, 0.25], [0, 1]]"  # 21 bytes
    with pytest.raises(ValueError, match="body too large: 21 bytes, at most 20"):
        parse_image(body, "application/json", (1, 2, 2), max_bytes=20)
    assert parse_image(body, "application/json", (1, 2, 2), max_bytes=21).shape == (1, 2, 2)
