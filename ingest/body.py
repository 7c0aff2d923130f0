"""The request body: bounded read with a deadline, bounded gzip/deflate decoding (a bomb stops at the limit, it is
never inflated whole), and the content-type check. aiohttp's own decompression is switched off (server.py) so that
these limits, not the library's, apply."""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from ingest import errors


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(method: str, content_type: str | None, content_length: int | None,
                       allowed: frozenset[str]) -> None:
    """POST bodies must have an accepted media type; a GET (or an empty POST) may have none."""
    mt = media_type(content_type)
    if not mt:
        if method == "GET" or content_length == 0:
            return
        raise errors.unsupported_type("", allowed)
    if mt not in allowed:
        raise errors.unsupported_type(mt, allowed)


async def read(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The body as sent on the wire (still encoded), at most ``limit`` bytes, within ``timeout_s``."""
    cl = request.content_length
    if cl is not None and cl > limit:
        raise errors.too_large(limit)
    content = request.content
    if content.is_eof() and content.exception() is None:
        # the whole body came with the head (the usual webhook): no deadline to arm, nothing to await
        first = content.read_nowait()
        if len(first) > limit:
            raise errors.too_large(limit)
        return first
    try:
        async with asyncio.timeout(timeout_s):
            first = await request.content.readany()  # usually the whole body: it came with the headers
            if len(first) > limit:
                raise errors.too_large(limit)
            if not first or request.content.at_eof():
                return first
            buf = bytearray(first)
            while chunk := await request.content.readany():
                buf += chunk
                if len(buf) > limit:  # chunked bodies have no length up front
                    raise errors.too_large(limit)
            return bytes(buf)
    except TimeoutError:
        raise errors.timeout(timeout_s) from None
    except ConnectionError:  # the client hung up (or half-closed) mid-body: aiohttp's "Connection lost"
        raise errors.client_closed() from None


def decode(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo the transport encoding with an output bound: at most ``limit`` bytes are ever inflated."""
    enc = (content_encoding or "").strip().lower()
    if enc in ("", "identity"):
        return data
    if enc in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif enc == "deflate":
        wbits = zlib.MAX_WBITS  # zlib-wrapped; raw deflate is retried below
    else:
        raise errors.unsupported_encoding(enc)
    try:
        return _inflate(data, wbits, limit)
    except zlib.error:
        if enc == "deflate":
            try:
                return _inflate(data, -zlib.MAX_WBITS, limit)
            except zlib.error:
                pass
        raise errors.bad_encoding(f"the body is not valid {enc} data") from None


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, limit + 1)  # max_length: stops inflating one byte past the limit
    if len(out) > limit:
        raise errors.too_large(limit)
    if d.unconsumed_tail:  # more output pending than the bound allowed
        raise errors.too_large(limit)
    out += d.flush()  # nothing left to inflate beyond the bound at this point, flush is small
    if len(out) > limit:
        raise errors.too_large(limit)
    if not d.eof or d.unused_data:
        raise zlib.error("truncated stream or trailing data")
    return out
