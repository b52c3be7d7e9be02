"""Session ids: issued by the server, signed, bound to one site.

A sid is ``<12 random bytes, base64url>.<HMAC-SHA256(secret, site:random)[:9], base64url>``
(29 characters); checking it costs one HMAC and a constant-time compare (no HMAC for a
sid this process issued or verified lately: it remembers their MACs), and a sid of
another site or a forged one never verifies.

96 random bits keep sids apart (a repeat is expected only after about 2**48 of them);
72 bits of MAC make a forgery one guess in 2**72, each guess an HTTP request.  A sid is
written four times per held number (its record's key, the pool's session index, the
number's holders and its history), so its length is a good part of a session's memory.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

RANDOM_BYTES = 12
MAC_BYTES = 9
RANDOM_CHARS = RANDOM_BYTES * 4 // 3
IDS_PER_DRAW = 256  # random parts read from the OS in one system call
MACS_KEPT = 16_384  # sids this process issued or verified, whose MAC it remembers
assert RANDOM_BYTES % 3 == 0 and MAC_BYTES % 3 == 0  # base64 with no padding to strip

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(raw: bytes) -> str:
    """base64url (``base64.urlsafe_b64encode``, without its two Python calls)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).decode()


class _RandomParts:
    """Random parts of sids, ``RANDOM_BYTES`` each, base64url: read from the OS
    ``IDS_PER_DRAW`` at a time (one system call and one encoding for them all).

    ``list.pop`` hands each part out once, whichever threads ask.  A forked process
    drops the parts it inherited, which its parent hands out too."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        os.register_at_fork(after_in_child=self.parts.clear)

    def take(self) -> str:
        while True:
            try:
                return self.parts.pop()
            except IndexError:
                text = _b64(os.urandom(RANDOM_BYTES * IDS_PER_DRAW))
                cut = range(0, len(text), RANDOM_CHARS)
                self.parts.extend([text[i : i + RANDOM_CHARS] for i in cut])


_random_parts = _RandomParts()


class Signer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("CALLPATH_SECRET must be at least 16 bytes")
        # HMAC (RFC 2104) with the keyed inner and outer states made once: a sid then
        # costs two hash copies instead of building an HMAC object (a third of the time)
        key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        # random part → (site, MAC) of the sids issued or verified here: a returning
        # visitor's sid is then checked without an HMAC, and still in constant time
        self._macs: dict[str, tuple[str, str]] = {}

    def __repr__(self) -> str:
        return "Signer(secret=***)"

    def _mac(self, site: str, rand: str) -> str:
        inner = self._inner.copy()
        inner.update(f"{site}:{rand}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return _b64(outer.digest()[:MAC_BYTES])

    def _remember(self, site: str, rand: str, mac: str) -> None:
        if len(self._macs) >= MACS_KEPT:
            self._macs.clear()
        self._macs[rand] = (site, mac)

    def issue(self, site: str) -> str:
        rand = _random_parts.take()
        mac = self._mac(site, rand)
        self._remember(site, rand, mac)
        return f"{rand}.{mac}"

    def verify(self, site: str, sid: object) -> bool:
        if not isinstance(sid, str) or len(sid) > 64 or not sid.isascii() or sid.count(".") != 1:
            return False
        rand, mac = sid.split(".")
        known = self._macs.get(rand)
        expected = known[1] if known is not None and known[0] == site else self._mac(site, rand)
        if not hmac.compare_digest(mac, expected):
            return False
        if known is None:
            self._remember(site, rand, mac)
        return True


def load_secret(data_dir: str | os.PathLike[str], env: dict[str, str] | None = None) -> bytes:
    """``CALLPATH_SECRET``, else a secret generated once into the data dir."""
    env = dict(os.environ) if env is None else env
    if env.get("CALLPATH_SECRET"):
        return env["CALLPATH_SECRET"].encode()
    path = Path(data_dir) / "secret"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value
