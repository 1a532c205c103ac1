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
    with pytest.raises(ValueError, match=r"shape \(1, 3, 4\) or \(3, 4\), got \(1, 4, 4\)"):
        parse_image(image_to_png(np.zeros((4, 4))), "image/png", (1, 3, 4))
