"""The envelope-encryption module: small sealed values and encrypted streams."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.crypto import DecryptionFailed, Keyring, UnknownKey, key_id, keyring_for
from garrison.settings import load_settings

OLD = "old-master-key-" + "x1y2z3" * 6
NEW = "new-master-key-" + "a9b8c7" * 6


def test_seal_round_trips_and_names_its_key() -> None:
    ring = Keyring(NEW)
    token = ring.seal("whsec_abc", purpose="webhooks.secret", context="ep_1")
    assert token.startswith(f"gv1.{ring.current_id}.")
    assert "whsec_abc" not in token
    assert ring.open_text(token, purpose="webhooks.secret", context="ep_1") == "whsec_abc"
    assert ring.current_id == key_id(NEW.encode())


def test_each_seal_uses_a_fresh_nonce() -> None:
    ring = Keyring(NEW)
    assert ring.seal("same", purpose="p") != ring.seal("same", purpose="p")


@pytest.mark.parametrize(
    ("purpose", "context"), [("other.purpose", "ep_1"), ("webhooks.secret", "ep_2")]
)
def test_a_ciphertext_does_not_open_in_another_purpose_or_row(purpose: str, context: str) -> None:
    ring = Keyring(NEW)
    token = ring.seal("s3cret", purpose="webhooks.secret", context="ep_1")
    with pytest.raises(DecryptionFailed):
        ring.open(token, purpose=purpose, context=context)


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[:-2],
        lambda t: t[:-3] + ("A" if t[-3] != "A" else "B") + t[-2:],
        lambda t: t.replace("gv1.", "gv2."),
        lambda t: "gv1..abc",
        lambda t: "not a token",
        lambda t: t.split(".")[0] + "." + t.split(".")[1] + ".%%%",
    ],
)
def test_damaged_ciphertexts_are_refused(damage: object) -> None:
    ring = Keyring(NEW)
    token = ring.seal("s3cret", purpose="p")
    assert callable(damage)
    with pytest.raises(DecryptionFailed):
        ring.open(damage(token), purpose="p")


def test_a_new_master_key_reads_old_ciphertexts_and_rewraps_them() -> None:
    old_token = Keyring(OLD).seal("value", purpose="p")
    ring = Keyring(NEW, [OLD])
    assert ring.needs_rewrap(old_token)
    assert ring.open(old_token, purpose="p") == b"value"
    fresh = ring.rewrap(old_token, purpose="p")
    assert not ring.needs_rewrap(fresh)
    assert Keyring(NEW).open(fresh, purpose="p") == b"value"
    with pytest.raises(UnknownKey):
        Keyring(NEW).open(old_token, purpose="p")


def _stream(ring: Keyring, data: bytes, chunk_size: int = 1000) -> list[bytes]:
    pieces = [data[i : i + 777] for i in range(0, len(data), 777)]
    return list(ring.encrypt_stream(pieces, purpose="backup", chunk_size=chunk_size))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=5000))
def test_streams_round_trip(data: bytes) -> None:
    ring = Keyring(NEW)
    out = b"".join(ring.decrypt_stream(_stream(ring, data), purpose="backup"))
    assert out == data


def test_a_stream_hides_its_plaintext_and_is_bounded_in_chunks() -> None:
    ring = Keyring(NEW)
    data = b"known-row-value " * 10_000
    encrypted = b"".join(_stream(ring, data, chunk_size=4096))
    assert b"known-row-value" not in encrypted
    assert len(encrypted) < len(data) + 100 * 40  # about 20 bytes per 4 KiB chunk


def test_stream_truncation_reorder_and_trailing_bytes_are_detected() -> None:
    ring = Keyring(NEW)
    records = _stream(ring, os.urandom(5000))
    header, body = records[0], records[1:]
    assert len(body) == 5
    cases = {
        "truncated at a chunk boundary": [header, *body[:-1]],
        "truncated inside a chunk": [header, *body[:-1], body[-1][:-5]],
        "reordered": [header, body[1], body[0], *body[2:]],
        "trailing bytes": [header, *body, b"x"],
        "header only": [header],
        "bad magic": [b"X" + header[1:], *body],
    }
    for name, parts in cases.items():
        with pytest.raises(DecryptionFailed):
            b"".join(ring.decrypt_stream(parts, purpose="backup"))
        assert name


def test_a_stream_under_another_key_or_purpose_is_refused() -> None:
    records = _stream(Keyring(NEW), b"data" * 100)
    with pytest.raises(UnknownKey):
        b"".join(Keyring(OLD).decrypt_stream(records, purpose="backup"))
    with pytest.raises(DecryptionFailed):
        b"".join(Keyring(NEW).decrypt_stream(records, purpose="other"))


def test_keyring_for_settings_reads_previous_keys(tmp_path: Path) -> None:
    token = Keyring(OLD).seal("v", purpose="p")
    settings_ = load_settings(data_dir=tmp_path, secret_key=NEW, previous_secret_keys=[OLD])
    ring = keyring_for(settings_)
    assert ring.current_id == key_id(NEW.encode())
    assert ring.open(token, purpose="p") == b"v"
    assert settings_.redacted()["previous_secret_keys"] == ["**********"]
