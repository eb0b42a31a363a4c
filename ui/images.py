"""Reading uploaded images: any common format in, an upright 8-bit RGB image out, or a message.

PNG, JPEG, WebP, BMP, GIF (first frame) and TIFF are decoded by Pillow; the EXIF orientation is
applied, so a phone photo stands the way it was taken; transparency is composited on white (the
colour the transparent parts show on a page), palette, CMYK, greyscale and 16-bit images are mapped
to 8-bit RGB by value (16-bit as v / 257, not clipped at 255). The size is checked from the header,
before the pixels are decoded, against `MAX_PIXELS` (the backend's limit), and Pillow's own
decompression-bomb guard is made fatal, so a small file that would expand to gigabytes is refused.
This is the only image reader: the DETR page and any other page that takes images use it
(`upright_size` for a page that needs only the size).
"""

import io
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from models.detr.preprocess import MAX_PIXELS
from ui.uploads import UploadError

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, preserving what the pixels mean."""
    if img.mode in SIXTEEN_BIT_MODES or img.mode == "I":
        arr = np.asarray(img).astype(np.float64)  # (H, W), 0..65535 for 16-bit
        if img.mode in SIXTEEN_BIT_MODES or arr.max(initial=0) > 255:
            arr = arr / 257.0  # 65535 -> 255
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":  # float images have no fixed range: stretch min..max to 0..255
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.nan_to_num(arr).astype(np.uint8), "L")
    if img.mode in ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB")


def _open(data: bytes, name: str) -> Image.Image:
    """Pillow's lazy open (the header only), or UploadError for an empty file or one it cannot identify."""
    if not data:
        raise UploadError(f"{name} is empty (0 bytes).")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as err:
        raise UploadError(
            f"{name} is not an image Pillow can read; upload {', '.join(t.upper() for t in IMAGE_TYPES)}."
        ) from err


def read_image(data: bytes, name: str = "the file", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Uploaded bytes -> an upright RGB image, or UploadError with a message that says why not."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half an image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open(data, name)
            if img.width * img.height > max_pixels:
                raise UploadError(
                    f"{name} is {img.width}×{img.height} = {img.width * img.height:,} pixels; the limit is "
                    f"{max_pixels:,}. Scale it down first."
                )
            img.seek(0)  # GIF, animated WebP, multi-page TIFF: the first frame
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UploadError(f"{name} was refused as a decompression bomb: {err}") from err
    except Exception as err:  # noqa: BLE001 - Pillow's decoders raise many types on corrupt input
        raise UploadError(f"{name} could not be decoded (truncated or corrupt?): {err}") from err


def upright_size(data: bytes, name: str = "the file") -> tuple[int, int]:
    """(height, width) of the image as `read_image` would stand it up, read from the header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # no pixels are decoded
            with _open(data, name) as img:
                w, h = img.size
                # Pillow's PNG getexif decodes every pixel to look for an eXIf chunk after the image data
                exif = img.getexif() if img.format != "PNG" or "exif" in img.info else {}
                if exif.get(ExifTags.Base.Orientation) in (5, 6, 7, 8):  # a quarter turn
                    w, h = h, w
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise UploadError(f"{name} declares more pixels than Pillow will open.") from None
    except Exception as err:  # noqa: BLE001 - a corrupt header can raise many types
        raise UploadError(f"{name} could not be read: {err}") from err
    return h, w
