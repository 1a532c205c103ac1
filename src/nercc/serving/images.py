"""Turn an HTTP request body into one image the classifier takes, or say in one line why not."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

__all__ = ["PNG_SIGNATURE", "image_to_png", "parse_image"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: The largest body accepted by default (bytes): a 224x224 RGB image as JSON is about 1.5 MB.
MAX_BODY_BYTES = 8 * 2**20


def parse_image(
    body: bytes,
    content_type: str | None,
    shape: tuple[int, int, int],
    max_bytes: int = MAX_BODY_BYTES,
) -> np.ndarray:
    """The image in ``body``: PNG bytes, or a JSON array (or ``{"image": array}``) of values in
    [0, 1] with shape (C, H, W), or (H, W) for one channel.

    A PNG must have the classifier's height and width (it is refused, not resized, and refused
    before its pixels are decoded) and 8 bits per channel; grey, RGB and palette images are
    converted to the classifier's channels (grey: luminance; RGB: the grey replicated).

    Parameters
    ----------
    body : bytes
        The request body.
    content_type : str or None
        The request's Content-Type; PNG is recognised by its signature whatever it says.
    shape : (channels, height, width)
        What the classifier takes.
    max_bytes : int
        The largest body accepted (the endpoint passes its configured limit).

    Returns
    -------
    ndarray of shape ``shape``, float32 in [0, 1].

    Raises
    ------
    ValueError
        One line naming what is wrong and what was expected.
    """
    channels, height, width = shape
    if not body:
        raise ValueError("empty body: send a PNG image or a JSON array of pixel values")
    if len(body) > max_bytes:
        raise ValueError(f"body too large: {len(body)} bytes, at most {max_bytes}")
    if body.startswith(PNG_SIGNATURE):
        image = _from_png(body, channels, (height, width))
    elif (content_type or "").split(";")[0].strip() in ("application/json", "") or body[:1] in (
        b"[",
        b"{",
    ):
        image = _from_json(body)
    else:
        raise ValueError(
            f"unsupported body (Content-Type {content_type!r}): send PNG bytes or a JSON array"
        )
    if image.ndim == 2 and channels == 1:
        image = image[None]
    if image.shape != (channels, height, width):
        expected = f"({channels}, {height}, {width})"
        if channels == 1:
            expected += f" or ({height}, {width})"
        raise ValueError(f"image must have shape {expected}, got {image.shape}")
    return image


#: PNG modes with 8 bits per channel that convert to grey or RGB.
PNG_MODES = ("L", "LA", "P", "PA", "RGB", "RGBA", "1")


def _from_png(body: bytes, channels: int, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(body)) as png:
            height, width = png.height, png.width
            if (height, width) != size:  # checked before the pixels are decoded
                raise _Refused(
                    f"image must be {size[1]}x{size[0]} pixels (width x height), "
                    f"got {width}x{height}"
                )
            if png.mode not in PNG_MODES:
                raise _Refused(f"PNG must have 8 bits per channel, got mode {png.mode!r}")
            png.load()
            pixels = np.asarray(png.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    except _Refused as error:
        raise ValueError(str(error)) from None
    except Exception as error:
        # Exception: PIL's DecompressionBombError and whatever else a broken file raises
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ValueError(f"not a readable PNG image ({reason})") from None
    pixels /= 255.0
    return pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)


class _Refused(Exception):
    """A readable PNG that is not what the classifier takes."""


def _from_json(body: bytes) -> np.ndarray:
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None
    if isinstance(data, dict):
        if "image" not in data:
            raise ValueError(f"a JSON object must have the key 'image', got keys {sorted(data)}")
        data = data["image"]
    try:  # as objects first: numpy would take true as 1 and "0.5" as 0.5
        values = np.array(data, dtype=object)
    except (TypeError, ValueError, RecursionError):
        raise ValueError("the image must be a rectangular array of numbers") from None
    for value in values.flat:
        if isinstance(value, list):  # a ragged array
            raise ValueError("the image must be a rectangular array of numbers")
        if type(value) not in (int, float):  # bool is a subclass of int: refused here
            raise ValueError(f"pixel values must be numbers, got {_json_name(value)}")
    try:
        image = values.astype(np.float64)
    except (OverflowError, TypeError, ValueError):
        raise ValueError("pixel values must be numbers in [0, 1], got a number too large") from None
    if image.size == 0:
        raise ValueError(f"the image is empty (shape {image.shape})")
    if image.ndim not in (2, 3):
        raise ValueError(f"the image must be an array of 2 or 3 dimensions, got {image.ndim}")
    if not np.all(np.isfinite(image)):  # before the range: NaN has none
        raise ValueError("pixel values must be finite and in [0, 1], got non-finite values")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"pixel values must be finite and in [0, 1], got [{low:g}, {high:g}]")
    return image.astype(np.float32)


def _json_name(value: Any) -> str:
    """How a JSON value that is not a number is named in an error: ``true``, ``null``, ..."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {json.dumps(value[:20])}"
    return "an object" if isinstance(value, dict) else type(value).__name__


def image_to_png(image: np.ndarray) -> bytes:
    """PNG bytes of an image (C, H, W) or (H, W) in [0, 1] (8 bits per channel)."""
    from PIL import Image

    pixels = np.asarray(image, dtype=np.float64)
    if pixels.ndim == 3:
        pixels = pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)
    data = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, format="PNG")
    return buffer.getvalue()
