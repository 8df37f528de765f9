"""Our collection names as Chroma collection names, reversibly."""

from __future__ import annotations

import string

PREFIX = "evolvent-"  # not "evolvent.": an escaped first character would make ".."
_KEEP = frozenset(string.ascii_letters + string.digits + "_-")
_HEX = frozenset("0123456789ABCDEF")


def chroma_name(collection: str) -> str:
    """Our collection name as a valid Chroma name (reversible, see ``collection_name``).

    Chroma wants 3-512 chars of [a-zA-Z0-9._-] that start and end alphanumeric, without "..".
    Other bytes, and a trailing '_' or '-', become ".HH": '.' never appears unescaped, so the
    mapping inverts, and every '.' is followed by a hex digit, so ".." cannot occur.
    """
    if not collection:
        raise ValueError("empty collection name")
    out: list[str] = []
    raw = collection.encode()
    for i, b in enumerate(raw):
        ch = chr(b)
        last = i == len(raw) - 1
        out.append(ch if ch in _KEEP and not (last and ch in "_-") else f".{b:02X}")
    name = PREFIX + "".join(out)
    if len(name) > 512:
        raise ValueError(f"collection name too long for Chroma: {collection!r}")
    return name


def collection_name(chroma: str) -> str | None:
    """The inverse of ``chroma_name``; None for collections that are not ours."""
    if not chroma.startswith(PREFIX):
        return None
    body = chroma[len(PREFIX) :]
    buf = bytearray()
    i = 0
    while i < len(body):
        if body[i] == ".":
            code = body[i + 1 : i + 3]
            if len(code) != 2 or not set(code) <= _HEX:
                return None
            buf.append(int(code, 16))
            i += 3
        else:
            buf.extend(body[i].encode())
            i += 1
    try:
        return buf.decode()
    except UnicodeDecodeError:
        return None
