"""Messages between the grader and a student worker: length-prefixed `torch.save` bytes.

Both sides read with `torch.load(weights_only=True)`, so neither can make the other unpickle
arbitrary objects; only tensors, numbers, strings, bools, None and containers of those travel.
The channel is a dedicated pipe, never stdout, so the student's prints cannot corrupt it.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

import torch

HEADER = struct.Struct("<Q")
MAX_MESSAGE_BYTES = 512 * 2**20


class ProtocolError(RuntimeError):
    """The other side sent something that is not a well-formed message."""


def brief(exc: BaseException, limit: int = 200) -> str:
    """The first sentence of an exception's message, for a student-facing line."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    first = text.splitlines()[0]
    cut = first.find(". ", 40)
    return (first[: cut + 1] if cut > 0 else first)[:limit]


def encode(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    return HEADER.pack(len(data)) + data


def decode(data: bytes) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a malformed message
        raise ProtocolError(f"message refused by weights_only loading: {exc}") from exc


def write_message(fd: int, obj: Any) -> None:
    """Send one message on a pipe file descriptor (blocking)."""
    data = memoryview(encode(obj))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 2**20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> Any:
    """Receive one message (blocking); refuses messages above MAX_MESSAGE_BYTES."""
    (length,) = HEADER.unpack(read_exactly(fd, HEADER.size))
    if length > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {length} bytes is over the {MAX_MESSAGE_BYTES} limit")
    return decode(read_exactly(fd, length))
