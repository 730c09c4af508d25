"""multipart/form-data bodies built by hand, byte for byte, for the tests."""

from __future__ import annotations

import uuid


def multipart(
    fields: dict[str, str], files: list[tuple[str, str, bytes]], files_first: bool = False
) -> tuple[bytes, str]:
    """Body and Content-Type of a form: text `fields`, (field, file name, bytes) `files`; the
    fields come first unless `files_first`."""
    boundary = uuid.uuid4().hex
    text = b""
    for name, value in fields.items():
        text += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    attached = b""
    for name, filename, data in files:
        attached += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: audio/wav\r\n\r\n'
        ).encode()
        attached += data + b"\r\n"
    body = attached + text if files_first else text + attached
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
