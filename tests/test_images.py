"""Image uploads: every format, mode and orientation decodes to upright RGB; bad files get a message."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ui.images import read_image, upright_size
from ui.uploads import UploadError


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def pixels(data: bytes, **kwargs) -> np.ndarray:
    img = read_image(data, "test", **kwargs)
    assert img.mode == "RGB"
    return np.asarray(img)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header for an 8-bit greyscale image of the given size, with a few bytes of pixels:
    tiny on disk, width * height bytes once decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(12, 20, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "fmt, kwargs", [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {"lossless": True})]
)
def test_lossless_formats_round_trip_exactly(rgb, fmt, kwargs):
    np.testing.assert_array_equal(pixels(encode(Image.fromarray(rgb), fmt, **kwargs)), rgb)


def test_jpeg_decodes_close_to_the_original():
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (16, 1, 3))
    out = pixels(encode(Image.fromarray(smooth), "JPEG", quality=95))
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth).mean() < 3


def test_gif_gives_its_first_frame():
    red = Image.new("RGB", (8, 6), (255, 0, 0))
    blue = Image.new("RGB", (8, 6), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    np.testing.assert_array_equal(pixels(data)[0, 0], [255, 0, 0])


def test_exif_orientation_is_applied():
    img = np.zeros((10, 20, 3), dtype=np.uint8)  # 20 wide, 10 tall
    img[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = pixels(encode(Image.fromarray(img), "JPEG", quality=95, exif=exif))
    assert out.shape == (20, 10, 3)  # upright: 10 wide, 20 tall
    assert out[:10].mean() > 200 and out[10:].mean() < 50  # the left half is now on top


def test_upright_size_reads_the_header_and_the_orientation():
    img = Image.fromarray(np.zeros((10, 20, 3), dtype=np.uint8))  # 20 wide, 10 tall
    for fmt in ["JPEG", "PNG", "WEBP"]:
        for orientation, size in [(1, (10, 20)), (3, (10, 20)), (6, (20, 10)), (8, (20, 10))]:
            exif = Image.Exif()
            exif[0x0112] = orientation
            data = encode(img, fmt, exif=exif)
            assert upright_size(data) == size == pixels(data).shape[:2], (fmt, orientation)
    assert upright_size(png_bomb(12_000, 10_000)) == (10_000, 12_000)  # the header only: no pixels decoded
    for data, message in [
        (b"", "is empty"),
        (b"name,score\n", "not an image"),
        (png_bomb(30_000, 20_000), "more pixels than Pillow will open"),
    ]:
        with pytest.raises(UploadError, match=message):
            upright_size(data, "upload")


def test_transparency_is_composited_on_white():
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red channel everywhere
    rgba[0, 0, 3] = 255  # opaque
    rgba[0, 1, 3] = 0  # transparent
    rgba[0, 2, 3] = 128  # half
    out = pixels(encode(Image.fromarray(rgba, "RGBA"), "PNG")).astype(int)
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    np.testing.assert_allclose(out[0, 2], [227.5, 127, 127], atol=1.5)


def test_greyscale_with_alpha_and_palette_with_transparency():
    la = Image.fromarray(
        np.stack([np.full((2, 2), 40, np.uint8), np.array([[255, 0], [255, 0]], np.uint8)], -1), "LA"
    )
    out = pixels(encode(la, "PNG"))
    np.testing.assert_array_equal(out[0, 0], [40, 40, 40])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 255, 10, 200, 10] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    out = pixels(encode(p, "PNG", transparency=0))
    np.testing.assert_array_equal(out[0], [[255, 255, 255], [10, 200, 10]])


def test_cmyk_is_converted_to_rgb():
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putpixel((0, 0), (0, 255, 255, 0))  # red
    cmyk.putpixel((1, 0), (0, 0, 0, 0))  # white
    out = pixels(encode(cmyk, "TIFF"))
    np.testing.assert_array_equal(out[0], [[255, 0, 0], [255, 255, 255]])
    assert pixels(encode(cmyk, "JPEG", quality=100))[0, 1].min() > 240  # JPEG's stored inversion handled


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    values = np.array([[0, 1000, 32896, 65535]], dtype=np.uint16)
    img = Image.frombytes("I;16", (4, 1), values.tobytes())
    out = pixels(encode(img, "PNG"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 4, 128, 255])
    assert (out[..., 0] == out[..., 2]).all()


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_and_bilevel_become_grey_rgb(mode):
    img = Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert(mode)
    np.testing.assert_array_equal(pixels(encode(img, "PNG"))[0], [[0, 0, 0], [255, 255, 255]])


def test_images_over_the_pixel_limit_are_refused():
    with pytest.raises(UploadError, match="20×20 = 400 pixels; the limit is 100"):
        read_image(encode(Image.new("RGB", (20, 20)), "PNG"), "big.png", max_pixels=100)


@pytest.mark.parametrize("side", [10_000, 40_000])  # past Pillow's warning, past its error
def test_decompression_bombs_are_refused_before_decoding(side):
    data = png_bomb(side, side)
    assert len(data) < 100
    with pytest.raises(UploadError, match="refused as a decompression bomb"):
        read_image(data, "bomb.png", max_pixels=10**10)


def test_a_bomb_under_pillows_guard_meets_our_limit():
    with pytest.raises(UploadError, match="7000×7000 = 49,000,000 pixels; the limit is 40,000,000"):
        read_image(png_bomb(7000, 7000), "bomb.png")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"name,score\nada,3\n", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|could not be decoded"),
    ],
)
def test_bad_files_get_a_message(data, message):
    with pytest.raises(UploadError, match=message):
        read_image(data, "upload")


def test_truncated_files_get_a_message(rgb):
    data = encode(Image.fromarray(np.tile(rgb, (8, 8, 1))), "PNG")
    with pytest.raises(UploadError, match="truncated or corrupt"):
        read_image(data[: len(data) // 2], "cut.png")
    jpeg = encode(Image.fromarray(np.tile(rgb, (8, 8, 1))), "JPEG")
    with pytest.raises(UploadError, match="truncated or corrupt"):
        read_image(jpeg[: len(jpeg) // 2], "cut.jpg")
