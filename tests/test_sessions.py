"""Session ids: signed with HMAC-SHA256 of the secret, bound to one site."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest

from attribution.sessions import MAC_BYTES, MACS_KEPT, Signer


def _expected_mac(secret: bytes, site: str, rand: str) -> str:
    digest = hmac.new(secret, f"{site}:{rand}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:MAC_BYTES]).rstrip(b"=").decode()


@pytest.mark.parametrize("secret", [b"s" * 16, b"k" * 64, b"long-secret-" * 10])
def test_a_sid_carries_the_hmac_sha256_of_its_site_and_random_part(secret: bytes) -> None:
    signer = Signer(secret)
    sid = signer.issue("acme")
    rand, mac = sid.split(".")
    assert mac == _expected_mac(secret, "acme", rand)
    assert signer.verify("acme", sid)
    assert len(sid) == 29 and len(rand) == 16 and len(mac) == 12


def test_a_sid_of_another_site_or_secret_or_a_forged_one_never_verifies() -> None:
    signer = Signer(b"s" * 32)
    sid = signer.issue("acme")
    assert not signer.verify("other", sid)
    assert not Signer(b"t" * 32).verify("acme", sid)
    rand, mac = sid.split(".")
    assert not signer.verify(
        "acme", f"{rand}.{mac[:-1]}A" if mac[-1] != "A" else f"{rand}.{mac[:-1]}B"
    )
    other_char = "x" if rand[-1] != "x" else "y"
    assert not signer.verify("acme", f"{rand[:-1]}{other_char}.{mac}")
    assert not signer.verify("acme", "not-a-sid")
    assert not signer.verify("acme", f"{rand}\ud800.{mac}")  # a lone surrogate from JSON


def test_sids_verify_the_same_whether_their_mac_is_remembered_or_not() -> None:
    signer = Signer(b"s" * 32)
    sids = [signer.issue("acme") for _ in range(MACS_KEPT + 10)]  # the first are forgotten
    other = Signer(b"s" * 32)  # another process: remembers none of them
    for sid in (sids[0], sids[-1]):
        assert signer.verify("acme", sid) and other.verify("acme", sid)
        rand, mac = sid.split(".")
        forged = f"{rand}.{'A' * len(mac) if mac != 'A' * len(mac) else 'B' * len(mac)}"
        assert not signer.verify("acme", forged) and not other.verify("acme", forged)
        assert not signer.verify("beta", sid) and not other.verify("beta", sid)


def test_every_sid_is_new() -> None:
    signer = Signer(b"s" * 32)
    assert len({signer.issue("acme") for _ in range(1000)}) == 1000


def test_a_forked_worker_never_hands_out_its_parents_sids() -> None:
    """Random parts are drawn from the OS in blocks: a worker forked with a block half
    used must not issue the same sids as the process it was forked from."""
    signer = Signer(b"s" * 32)
    signer.issue("acme")  # the parent now holds a block of random parts
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next sids, to the parent
        try:
            os.write(write, " ".join(signer.issue("acme") for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {signer.issue("acme") for _ in range(50)}
    assert len(child) == 50 and not child & parent


def test_a_short_secret_is_refused_and_never_printed() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Signer(b"short")
    assert "0123456789abcdef" not in repr(Signer(b"0123456789abcdef"))
