"""Sizes, durations, timestamps (docker/go-units and docker's timetypes)."""

import os
import time

import pytest

from cli.units import (ram_in_bytes, nano_cpus, human_size, bytes_size, human_duration,
                       parse_go_duration, get_timestamp, rfc3339_nano_fixed, go_time_string)

KiB, MiB, GiB, TiB, PiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40, 1 << 50


@pytest.mark.parametrize("s,want", [
    ("32", 32), ("32b", 32), ("32B", 32), ("32k", 32 * KiB), ("32K", 32 * KiB),
    ("32kb", 32 * KiB), ("32Kb", 32 * KiB), ("32Kib", 32 * KiB), ("32KIB", 32 * KiB),
    ("32Mb", 32 * MiB), ("32Gb", 32 * GiB), ("32Tb", 32 * TiB), ("32Pb", 32 * PiB),
    ("32PB", 32 * PiB), ("32P", 32 * PiB), ("32.3", 32), ("32.3 mb", int(32.3 * MiB)),
    ("0.3MB", int(0.3 * MiB)), ("512m", 512 * MiB), ("1g", GiB), ("6m", 6 * MiB),
])
def test_ram_in_bytes(s, want):
    assert ram_in_bytes(s) == want


@pytest.mark.parametrize("s,msg", [
    ("", "invalid size: ''"), ("hello", "invalid size: 'hello'"), ("-32", "invalid size: '-32'"),
    (" 32 ", 'strconv.ParseFloat: parsing " 32": invalid syntax'),
    ("32m b", 'strconv.ParseFloat: parsing "32m": invalid syntax'),
    ("32bm", "invalid suffix: 'bm'"), ("1q", "invalid suffix: 'q'"), ("1Q", "invalid suffix: 'q'"),
    ("1kx", "invalid suffix: 'kx'"), ("1kibb", "invalid suffix: 'kibb'"),
])
def test_ram_in_bytes_errors(s, msg):
    with pytest.raises(ValueError) as ei:
        ram_in_bytes(s)
    assert str(ei.value) == msg


def test_nano_cpus():
    assert nano_cpus("1.5") == 1500000000
    assert nano_cpus("0.001") == 1000000
    assert nano_cpus("2") == 2000000000
    assert nano_cpus("3/2") == 1500000000
    with pytest.raises(ValueError, match="failed to parse abc as a rational number"):
        nano_cpus("abc")
    with pytest.raises(ValueError, match="value is too precise"):
        nano_cpus("0.0000000001")


@pytest.mark.parametrize("n,want", [
    (1000, "1kB"), (1024, "1.024kB"), (1000000, "1MB"), (1048576, "1.049MB"), (2e6, "2MB"),
    (3.42e9, "3.42GB"), (5.372e12, "5.372TB"), (2.22e15, "2.22PB"), (1e28, "1e+04YB"), (0, "0B"),
    (999, "999B"),
])
def test_human_size(n, want):
    assert human_size(n) == want


@pytest.mark.parametrize("n,want", [
    (4261550, "4.26MB"), (999, "999B"), (123456789012, "123GB"), (77800000, "77.8MB"),
    (999900, "1e+03kB"), (0, "0B"),
])
def test_human_size_precision_3_as_docker_images(n, want):
    assert human_size(n, 3) == want


@pytest.mark.parametrize("n,want", [
    (KiB, "1KiB"), (MiB, "1MiB"), (2 * MiB, "2MiB"), (3.42 * GiB, "3.42GiB"),
    (5.372 * TiB, "5.372TiB"), (2.22 * PiB, "2.22PiB"), (KiB ** 5 * PiB, "1.049e+06YiB"),
    (8000000000, "7.451GiB"),
])
def test_bytes_size(n, want):
    assert bytes_size(n) == want


@pytest.mark.parametrize("secs,want", [
    (-5, "Less than a second"), (0.45, "Less than a second"), (1, "1 second"),
    (1.9, "1 second"), (45, "45 seconds"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (35 * 60 + 40, "35 minutes"),
    (59 * 60 + 59, "59 minutes"), (3600, "About an hour"), (3600 + 29 * 60, "About an hour"),
    (3600 + 30 * 60, "2 hours"), (3600 + 45 * 60, "2 hours"), (3 * 3600, "3 hours"),
    (47 * 3600, "47 hours"), (47 * 3600 + 30 * 60, "2 days"), (48 * 3600, "2 days"),
    (3 * 86400, "3 days"), (13 * 86400, "13 days"), (14 * 86400, "2 weeks"),
    (21 * 86400, "3 weeks"), (59 * 86400, "8 weeks"), (60 * 86400, "2 months"),
    (364 * 86400, "12 months"), (729 * 86400, "24 months"), (730 * 86400, "2 years"),
    (3 * 365 * 86400, "3 years"),
])
def test_human_duration(secs, want):
    assert human_duration(secs) == want


def test_parse_go_duration():
    assert parse_go_duration("10m") == 600 * 10 ** 9
    assert parse_go_duration("1h30m") == 5400 * 10 ** 9
    assert parse_go_duration("1.5h") == 5400 * 10 ** 9
    assert parse_go_duration("300ms") == 300 * 10 ** 6
    assert parse_go_duration("-2s") == -2 * 10 ** 9
    assert parse_go_duration("0") == 0
    for bad in ("", "10", "1x", "h", "1..5s"):
        with pytest.raises(ValueError):
            parse_go_duration(bad)


@pytest.fixture
def utc():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_get_timestamp(utc):
    now = 1700000000.25
    assert get_timestamp("10m", now) == "1699999400"
    assert get_timestamp("1h30m", now) == "1699994600"
    assert get_timestamp("1700000000", now) == "1700000000"
    assert get_timestamp("1700000000.123456789", now) == "1700000000.123456789"
    assert get_timestamp("0", now) == "0"
    assert get_timestamp("2024-01-01", now) == "1704067200.000000000"
    assert get_timestamp("2024-01-01T10:00:00Z", now) == "1704103200.000000000"
    assert get_timestamp("2024-01-01T10:00:00.5Z", now) == "1704103200.500000000"
    assert get_timestamp("2024-01-01T10:00:00+01:00", now) == "1704099600.000000000"
    assert get_timestamp("2024-01-01T10", now) == "1704103200.000000000"
    assert get_timestamp("2024-01-01T10:30", now) == "1704105000.000000000"
    with pytest.raises(ValueError, match="failed to parse value as time or duration"):
        get_timestamp("yesterday", now)
    with pytest.raises(ValueError):
        get_timestamp("2024-13-01", now)


def test_go_time_formats(utc):
    assert rfc3339_nano_fixed(1700000000, 123456789) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339_nano_fixed(1700000001) == "2023-11-14T22:13:21.000000000Z"
    assert go_time_string(1700000000) == "2023-11-14 22:13:20 +0000 UTC"


def test_rfc3339_nano_fixed_with_offset():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Etc/GMT-2"  # UTC+2
    time.tzset()
    try:
        assert rfc3339_nano_fixed(1700000000, 5) == "2023-11-15T00:13:20.000000005+02:00"
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
