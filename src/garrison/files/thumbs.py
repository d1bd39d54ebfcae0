"""Thumbnails with Pillow, made off the event loop. The image's header is read first and
an image with more pixels than the limit is refused before anything is decoded (a
decompression bomb is a small file that decodes to gigabytes); so is one Pillow itself
calls a bomb."""

from __future__ import annotations

import asyncio
import io
import warnings

from garrison.errors import ValidationFailed

FORMATS = {"image/png": "PNG", "image/gif": "PNG", "image/webp": "WEBP", "image/jpeg": "JPEG"}


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def _refused(detail: str) -> ValidationFailed:
    return ValidationFailed(
        "no thumbnail can be made of this file", errors=[{"parameter": "thumb", "detail": detail}]
    )


def render(data: bytes, *, content_type: str, size: tuple[int, int], max_pixels: int) -> bytes:
    """The thumbnail (fit inside ``size``, aspect kept) in the source's format family."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > max_pixels:
                    raise _refused(
                        f"the image is {image.width}x{image.height}, over {max_pixels} pixels"
                    )
                image.thumbnail(size)
                fmt = FORMATS.get(content_type, "PNG")
                small: Image.Image = image
                if fmt == "JPEG" and image.mode not in ("RGB", "L"):
                    small = image.convert("RGB")
                out = io.BytesIO()
                small.save(out, fmt)
                return out.getvalue()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _refused("the image decodes to too many pixels") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise _refused("the image cannot be decoded") from None


async def thumbnail(
    data: bytes, *, content_type: str, size: tuple[int, int], max_pixels: int
) -> bytes:
    return await asyncio.to_thread(
        render, data, content_type=content_type, size=size, max_pixels=max_pixels
    )
