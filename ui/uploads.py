"""Reading what users upload, with a message that says what is wrong instead of a traceback."""

# Megabytes (MiB, as Streamlit counts them) that each kind of upload may have. Every st.file_uploader passes
# its kind's value as max_upload_size, so the browser refuses a larger file before sending it, and
# server.maxUploadSize in .streamlit/config.toml is the largest of them (tests/test_operations.py reads both):
# the official DETR-R101 checkpoints are 232 MB; an image's pixels are bounded separately (ui.images).
UPLOAD_MB = {"text": 2, "image": 100, "checkpoint": 400}


class UploadError(ValueError):
    """An upload that cannot be used; str(err) is the message to show."""


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # what Windows' "Unicode" text files start with


def decode_text(data: bytes, name: str, max_bytes: int = UPLOAD_MB["text"] * 2**20) -> str:
    """The text of an uploaded file: UTF-8 (a BOM is dropped), or UTF-16 when a BOM says so; or
    UploadError saying why not."""
    if not data:
        raise UploadError(f"{name} is empty.")
    if len(data) > max_bytes:
        raise UploadError(f"{name} is {len(data):,} bytes; the limit is {max_bytes:,}.")
    encoding = "utf-16" if data.startswith(UTF16_BOMS) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        kind = "UTF-16 text, as its byte-order mark says," if encoding == "utf-16" else "UTF-8 text"
        raise UploadError(
            f"{name} is not {kind} (byte {err.start} cannot be decoded). "
            "Save it as UTF-8, or paste the text instead."
        ) from err
    if "\x00" in text:
        raise UploadError(f"{name} looks like a binary file, not text.")
    return text
