"""Credentials from a request: `Authorization: Bearer <token>`, or Basic with the token as
password (what git sends for a private namespace)."""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import Headers

from ..errors import Unauthorized


def request_token(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized("the Basic credentials are not valid base64") from exc
        return decoded.partition(":")[2] or None
    raise Unauthorized("unsupported Authorization scheme",
                       extra={"hint": "send `Authorization: Bearer <token>`"})
