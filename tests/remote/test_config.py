"""Parsing of [storage:NAME] sections: good values, and clear errors for bad ones."""

from __future__ import annotations

import pytest

from pylaw.errors import ConfigError, StorageConfigError
from pylaw.target.remote.config import parse_section, parse_size, split_bases
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface
from pylaw.target.remote.xrootd import XRootDInterface


def test_full_section() -> None:
    config = parse_section("dcache", {
        "base": "davs://door.example.org:2880/pnfs/data/\n root://door.example.org//pnfs/data",
        "base_listdir": "root://door.example.org//pnfs/data",
        "cache_root": "/tmp/c", "cache_max_size": "2GiB", "retries": "5", "retry_delay": "0.25",
        "timeout": "30", "parallel": "16", "gfal_options": "HTTP PLUGIN:INSECURE=true; core:namespace_timeout=20",
    })
    assert config.bases == ("davs://door.example.org:2880/pnfs/data", "root://door.example.org//pnfs/data")
    assert config.bases_for("listdir") == ("root://door.example.org//pnfs/data",)
    assert config.bases_for("stat") == config.bases
    assert (config.cache_max_size, config.retries, config.retry_delay, config.timeout, config.parallel) == \
        (2 * 2**30, 5, 0.25, 30.0, 16)
    assert config.interface_options["options"] == {"HTTP PLUGIN:INSECURE": True, "CORE:NAMESPACE_TIMEOUT": 20}


def test_filesystem_from_config_uses_every_key() -> None:
    config = parse_section("x", {"base": "root://h//a, root://h2//a", "retries": "2", "cache_root": "/tmp/c"})
    fs = RemoteFileSystem.from_config(config)
    assert fs.bases == ("root://h//a", "root://h2//a")
    assert fs.retry.attempts == 3
    assert fs.cache is not None and fs.cache.root == "/tmp/c"


@pytest.mark.parametrize(("raw", "message"), [
    ({}, "needs `base = <url>`"),
    ({"base": "/just/a/path"}, "is not a URL"),
    ({"base": "root://h//a", "retries": "many"}, "retries = 'many' is not an integer"),
    ({"base": "root://h//a", "timeout": "-1"}, "must not be negative"),
    ({"base": "root://h//a", "cache_max_size": "lots"}, "is not a size"),
    ({"base": "root://h//a", "bse": "typo"}, "unknown key 'bse'"),
    ({"base": "root://h//a", "gfal_options": "INSECURE"}, "must read GROUP:KEY=value"),
    ({"base": "root://h//a", "interface": "posix"}, "interface = 'posix' is unknown"),
    ({"base": "root://h//a, davs://h/a", "interface": "xrootd"}, "serves root://, xroot:// URLs only"),
    ({"base": "root://h//a", "base_get": "https://h/a", "interface": "xrootd"}, "serves root://, xroot:// URLs only"),
    ({"base": "root://h//a", "interface": "xrootd", "gfal_options": "CORE:X=1"},
     "gfal_options is a key of interface = gfal"),
    ({"base": "file:///a", "interface": "memory"}, "serves memory:// URLs only"),
    ({"base": "root://h//a", "interface": "XRootD", "transfer_timeout": "soon"}, "transfer_timeout = 'soon'"),
    ({"base": "root://h//a", "checksum": "crc32"}, "checksum = 'crc32' is unknown"),
    ({"base": "root://h//a", "cache_validation": "mtime"}, "cache_validation = 'mtime' is unknown"),
    ({"base": "root://h//a", "record_checksums": "maybe"}, "is not true or false"),
    ({"base": "root://h//a", "record_checksums": "true", "checksum": "none"}, "needs an algorithm"),
])
def test_malformed_sections_raise_config_errors(raw, message) -> None:
    with pytest.raises(StorageConfigError, match=message) as info:
        parse_section("bad", raw)
    assert isinstance(info.value, ConfigError) and "[storage:bad]" in str(info.value)


def test_sizes_and_bases() -> None:
    assert parse_size("10GB", "x") == 10 * 10**9
    assert parse_size("512MiB", "x") == 512 * 2**20
    assert parse_size("1234", "x") == 1234
    assert split_bases("a://x/, b://y  c://z") == ("a://x", "b://y", "c://z")


def test_interface_is_chosen_per_storage_element() -> None:
    gfal = RemoteFileSystem.from_config(parse_section("g", {"base": "root://h//a"}))
    xrd = RemoteFileSystem.from_config(parse_section("x", {"base": "root://h//a", "interface": "XRootD",
                                                             "transfer_timeout": "600"}))
    assert isinstance(gfal.interface, GFALInterface)
    assert isinstance(xrd.interface, XRootDInterface) and xrd.interface.transfer_timeout == 600


def test_validation_keys_reach_the_storage_element() -> None:
    default = RemoteFileSystem.from_config(parse_section("d", {"base": "root://h//a", "cache_root": "/tmp/c"}))
    assert (default.checksum_algorithm, default.record_checksums) == ("adler32", False)
    assert default.cache is not None and default.cache.validation == "checksum"
    chosen = RemoteFileSystem.from_config(parse_section("c", {
        "base": "root://h//a", "cache_root": "/tmp/c", "checksum": "MD5", "cache_validation": "stat",
        "record_checksums": "yes"}))
    assert (chosen.checksum_algorithm, chosen.record_checksums) == ("md5", True)
    assert chosen.cache is not None and chosen.cache.validation == "stat"
    assert RemoteFileSystem.from_config(parse_section("n", {"base": "root://h//a", "checksum": "none"})
                                        ).checksum_algorithm is None
