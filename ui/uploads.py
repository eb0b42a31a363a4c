"""Reading what users upload, with a message that says what is wrong instead of a traceback."""


class UploadError(ValueError):
    """An upload that cannot be used; str(err) is the message to show."""


def decode_text(data: bytes, name: str, max_bytes: int = 2_000_000) -> str:
    """UTF-8 text of an uploaded file (a BOM is dropped), or UploadError saying why not."""
    if not data:
        raise UploadError(f"{name} is empty.")
    if len(data) > max_bytes:
        raise UploadError(f"{name} is {len(data):,} bytes; the limit is {max_bytes:,}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UploadError(
            f"{name} is not UTF-8 text (byte {err.start} cannot be decoded). "
            "Save it as UTF-8, or paste the text instead."
        ) from err
    if "\x00" in text:
        raise UploadError(f"{name} looks like a binary file, not text.")
    return text
