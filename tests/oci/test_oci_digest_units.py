import hashlib
import io

import pytest

from oci import digest as D
from oci import units as U
from oci.errors import InvalidDigest, OCIError

H = "a" * 64


def test_sha256_helpers():
    d = D.sha256_bytes(b"hello")
    assert d == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert D.sha256_fileobj(io.BytesIO(b"hello")) == (d, 5)
    assert D.hex_of(d) == d[7:]
    assert D.from_hex(d[7:]) == d
    assert D.short_id(d) == d[7:19]
    assert D.short_id(d[7:]) == d[7:19]


@pytest.mark.parametrize("bad,msg", [
    ("", "invalid checksum digest format"),
    ("sha256", "invalid checksum digest format"),
    ("sha256:", "invalid checksum digest format"),
    (":" + H, "invalid checksum digest format"),
    ("md5:" + H, "unsupported digest algorithm"),
    ("sha256:abc", "invalid checksum digest length"),
    ("sha256:" + "A" * 64, "invalid checksum digest format"),
    ("sha256:" + "g" * 64, "invalid checksum digest format"),
])
def test_bad_digests(bad, msg):
    with pytest.raises(InvalidDigest, match=msg):
        D.validate_digest(bad)
    assert not D.is_digest(bad)


def test_valid_digest_and_hex64():
    assert D.validate_digest("sha256:" + H) == "sha256:" + H
    assert D.is_hex64(H) and not D.is_hex64(H[:-1]) and not D.is_hex64(H.upper())
    assert D.parse_digest("sha512:" + "0" * 128) == ("sha512", "0" * 128)
    with pytest.raises(InvalidDigest):
        D.validate_digest("sha512:" + "0" * 128)  # parsed, but the store is sha256 only


def test_chain_ids_follow_the_oci_spec():
    d0, d1, d2 = (D.sha256_bytes(x) for x in (b"0", b"1", b"2"))
    c = D.chain_ids([d0, d1, d2])
    assert c[0] == d0
    assert c[1] == "sha256:" + hashlib.sha256(f"{d0} {d1}".encode()).hexdigest()
    assert c[2] == "sha256:" + hashlib.sha256(f"{c[1]} {d2}".encode()).hexdigest()
    assert D.chain_id(None, d0) == d0


def test_hashing_reader():
    r = D.HashingReader(io.BytesIO(b"x" * 3000000))
    assert len(r.read(10)) == 10
    r.drain()
    assert r.count == 3000000
    assert r.digest() == D.sha256_bytes(b"x" * 3000000)


@pytest.mark.parametrize("s,n", [
    ("512m", 512 * 1024 ** 2), ("1g", 1024 ** 3), ("1024", 1024), ("1.5g", int(1.5 * 1024 ** 3)),
    ("512mb", 512 * 1024 ** 2), ("512MB", 512 * 1024 ** 2), ("1GiB", 1024 ** 3),
    ("10k", 10240), ("10K", 10240), ("7b", 7), ("2t", 2 * 1024 ** 4), ("1p", 1024 ** 5),
    ("1 k", 1024),
])
def test_ram_in_bytes(s, n):
    assert U.ram_in_bytes(s) == n


@pytest.mark.parametrize("s,msg", [
    ("12x", "invalid suffix: 'x'"), ("", "invalid size: ''"), ("m", "invalid size: 'm'"),
    ("-1", "invalid size: '-1'"), ("1.5.5", 'strconv.ParseFloat: parsing "1.5.5": invalid syntax'),
    ("10bb", "invalid suffix: 'bb'"), ("1kk", "invalid suffix: 'kk'"), ("abc", "invalid size: 'abc'"),
    (" 1k", 'strconv.ParseFloat: parsing " 1": invalid syntax'),
])
def test_ram_in_bytes_invalid(s, msg):
    # go-units' (Docker 28's) words
    with pytest.raises(U.InvalidSize) as ei:
        U.ram_in_bytes(s)
    assert str(ei.value) == msg
    assert isinstance(ei.value, ValueError)


def test_from_human_size_and_formatting():
    assert U.from_human_size("1k") == 1000
    assert U.from_human_size("1.5GB") == 1_500_000_000
    assert U.human_size(4261234) == "4.261MB"
    assert U.human_size(4261234, 3) == "4.26MB"
    assert U.human_size(999) == "999B"
    assert U.human_size(1000) == "1kB"
    assert U.bytes_size(1536 * 1024 ** 2) == "1.5GiB"


def test_memory_checks():
    U.check_memory(6 * 1024 * 1024)
    U.check_memory(0, 0)
    with pytest.raises(U.InvalidSize, match="^Minimum memory limit allowed is 6MB$"):
        U.check_memory(4 * 1024 * 1024)
    with pytest.raises(U.InvalidSize, match="Minimum memoryswap limit should be larger"):
        U.check_memory(100 * 1024 ** 2, 50 * 1024 ** 2)
    with pytest.raises(U.InvalidSize, match="You should always set the Memory limit"):
        U.check_memory(0, 50 * 1024 ** 2)
    U.check_memory(100 * 1024 ** 2, -1)
    assert U.effective_memory_swap(100, 0) == 200
    assert U.effective_memory_swap(100, -1) == -1
    assert U.effective_memory_swap(0, 0) == 0


def test_units_is_stdlib_only():
    import subprocess
    import sys
    code = ("import sys; import oci.units, oci.reference, oci.digest, oci.errors; "
            "bad = [m for m in ('attrs', 'cattrs', 'trio', 'msgpack') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_errors_carry_codes():
    assert issubclass(InvalidDigest, ValueError)
    assert InvalidDigest.code == "INVALID_ARGUMENT" and InvalidDigest.http_status == 400
    assert issubclass(InvalidDigest, OCIError)
