"""Storage elements named in Luigi's config file, so tasks never hard-code URLs.

A storage element is a ``[storage:NAME]`` section::

    [storage:dcache]
    base = davs://dcache.example.org:2880/pnfs/example.org/data/myanalysis
           root://dcache.example.org:1094//pnfs/example.org/data/myanalysis
    base_listdir = root://dcache.example.org:1094//pnfs/example.org/data/myanalysis
    cache_root = /tmp/$USER/pylaw_cache
    cache_max_size = 20GB
    retries = 4
    retry_delay = 0.5
    timeout = 60
    parallel = 8

``base`` lists one or more base URLs (separated by commas or whitespace), tried in order
when one fails. ``base_<operation>`` overrides them for one operation (``stat``,
``listdir``, ``mkdir``, ``remove``, ``rename``, ``get``, ``put``).

``checksum`` (``adler32``, the default; ``md5``; ``none``) is the algorithm uploads and
downloads are verified with, where the storage reports checksums (elsewhere sizes only);
``cache_validation`` (``checksum``, the default, or ``stat``) whether a cache hit also
compares the remote checksum (one more server call per hit) or only size and mtime;
``record_checksums = true`` leaves a record of each uploaded file's checksum for
``pylaw verify`` (one more small upload per file). See :mod:`pylaw.target.remote.checksum`.

``interface`` picks the library behind the storage element by its registered name (see
:mod:`pylaw.target.remote.registry`): ``gfal`` (the default, every protocol), ``xrootd``
(XRootD's own client, 3-5x less CPU per call; root:// bases only), ``local``, ``memory``
or a third-party one. Keys beyond the common ones belong to the interface, which declares
and checks them (``gfal_options`` of ``gfal``: options of GFAL2's context, one
``GROUP:KEY=value`` per line or separated by ``;``, e.g. ``HTTP PLUGIN:INSECURE=true``).
"""

from __future__ import annotations

import dataclasses
import re

import luigi.configuration

from pylaw.errors import StorageConfigError
from pylaw.target.remote.checksum import ALGORITHMS
from pylaw.target.remote.interface import InterfaceSettings
from pylaw.target.remote.registry import interface_class

SECTION_PREFIX = "storage:"
OPERATIONS = ("stat", "listdir", "mkdir", "remove", "rename", "get", "put")
CHECKSUMS = (*ALGORITHMS, "none")
CACHE_VALIDATIONS = ("checksum", "stat")
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
#: the keys every storage element has; its interface adds its own (``FileInterface.config_keys``)
COMMON_KEYS = {"base", *(f"base_{op}" for op in OPERATIONS), "cache_root", "cache_max_size", "retries",
               "retry_delay", "retry_max_delay", "retry_jitter", "timeout", "transfer_timeout", "parallel",
               "interface", "checksum", "cache_validation", "record_checksums"}
#: the interfaces pylaw ships, whose keys the configuration page documents
BUILTIN_INTERFACES = ("gfal", "xrootd", "local", "memory")


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    """The parsed ``[storage:NAME]`` section (see the module docstring for the keys)."""

    name: str
    bases: tuple[str, ...]
    operation_bases: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    cache_root: str | None = None
    cache_max_size: int = 10 * 10**9
    retries: int = 3
    retry_delay: float = 0.5
    retry_max_delay: float = 10.0
    retry_jitter: float = 0.5
    timeout: float = 60.0
    transfer_timeout: float = 0.0
    parallel: int = 8
    interface: str = "gfal"
    #: constructor arguments of the interface, from its own keys (``FileInterface.parse_config``)
    interface_options: dict[str, object] = dataclasses.field(default_factory=dict)
    checksum: str | None = "adler32"
    cache_validation: str = "checksum"
    record_checksums: bool = False

    def bases_for(self, operation: str) -> tuple[str, ...]:
        """The base URLs to try, in order, for ``operation``."""
        return self.operation_bases.get(operation, self.bases)


def split_bases(value: str) -> tuple[str, ...]:
    """Base URLs from a comma/whitespace separated value, without trailing slashes."""
    return tuple(part.rstrip("/") for part in re.split(r"[,\s]+", value) if part)


def parse_size(value: str, what: str) -> int:
    """Bytes from ``10GB``, ``512MiB``, ``2k`` or a plain number."""
    match = _SIZE.match(value)
    if not match:
        raise StorageConfigError(f"{what} = {value!r} is not a size: use e.g. 20GB, 512MiB or bytes")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _number(raw: dict[str, str], key: str, default: float, what: str, kind: type = float) -> float:
    if key not in raw:
        return default
    try:
        value = kind(raw[key])
    except ValueError:
        kind_name = "an integer" if kind is int else "a number"
        raise StorageConfigError(f"{what}: {key} = {raw[key]!r} is not {kind_name}") from None
    if value < 0:
        raise StorageConfigError(f"{what}: {key} = {raw[key]!r} must not be negative")
    return value


def _choice(raw: dict[str, str], key: str, default: str, choices: tuple[str, ...], what: str) -> str:
    value = raw.get(key, default).strip().lower()
    if value not in choices:
        raise StorageConfigError(f"{what}: {key} = {raw[key]!r} is unknown; choose one of {', '.join(choices)}")
    return value


def _validation_keys(raw: dict[str, str], what: str) -> dict[str, object]:
    """``checksum``, ``cache_validation`` and ``record_checksums``, checked together."""
    checksum = _choice(raw, "checksum", "adler32", CHECKSUMS, what)
    validation = _choice(raw, "cache_validation", StorageConfig.cache_validation, CACHE_VALIDATIONS, what)
    text = raw.get("record_checksums", "false").strip().lower()
    if text not in _BOOLEANS:
        raise StorageConfigError(f"{what}: record_checksums = {raw['record_checksums']!r} is not true or false")
    if _BOOLEANS[text] and checksum == "none":
        raise StorageConfigError(f"{what}: record_checksums = true needs an algorithm: set checksum = adler32 "
                                 "or md5")
    return {"checksum": None if checksum == "none" else checksum, "cache_validation": validation,
            "record_checksums": _BOOLEANS[text]}


def known_keys(interface: str | None = None) -> set[str]:
    """The keys a section may have: the common ones and those of ``interface`` (default: every built-in one)."""
    names = (interface,) if interface else BUILTIN_INTERFACES
    return COMMON_KEYS.union(*(interface_class(name).config_keys for name in names))


def _check_keys(raw: dict[str, str], interface: str, own: set[str], what: str) -> None:
    """StorageConfigError for a key neither common nor the interface's (naming whose key it is, if any)."""
    for key in sorted(raw):
        if key in COMMON_KEYS or key in own:
            continue
        owners = [name for name in BUILTIN_INTERFACES if name != interface
                  and key in interface_class(name).config_keys]
        if owners:
            raise StorageConfigError(f"{what}: {key} is a key of interface = {owners[0]}, and this section uses "
                                     f"interface = {interface}; remove it or change the interface")
        raise StorageConfigError(f"{what} has the unknown key {key!r}; known keys: {sorted(COMMON_KEYS | own)}")


def parse_section(name: str, raw: dict[str, str]) -> StorageConfig:
    """Validate the keys of one ``[storage:NAME]`` section; raise StorageConfigError on any fault."""
    what = f"[{SECTION_PREFIX}{name}]"
    interface = raw.get("interface", StorageConfig.interface).strip().lower()
    cls = interface_class(interface, what)
    _check_keys(raw, interface, set(cls.config_keys), what)
    bases = split_bases(raw.get("base", ""))
    if not bases:
        raise StorageConfigError(f"{what} needs `base = <url>` (e.g. root://host//path), got none")
    operation_bases = {op: split_bases(raw[f"base_{op}"]) for op in OPERATIONS if raw.get(f"base_{op}")}
    urls = (*bases, *(u for urls in operation_bases.values() for u in urls))
    transfer_timeout = _number(raw, "transfer_timeout", StorageConfig.transfer_timeout, what)
    for url in urls:
        if "://" not in url:
            raise StorageConfigError(f"{what}: base {url!r} is not a URL: write it as scheme://host/path "
                                     "(file:///abs/path for local directories)")
    return StorageConfig(
        name=name, bases=bases, operation_bases=operation_bases,
        cache_root=raw.get("cache_root") or None,
        cache_max_size=parse_size(raw["cache_max_size"], f"{what} cache_max_size")
        if "cache_max_size" in raw else StorageConfig.cache_max_size,
        retries=int(_number(raw, "retries", StorageConfig.retries, what, int)),
        retry_delay=_number(raw, "retry_delay", StorageConfig.retry_delay, what),
        retry_max_delay=_number(raw, "retry_max_delay", StorageConfig.retry_max_delay, what),
        retry_jitter=_number(raw, "retry_jitter", StorageConfig.retry_jitter, what),
        timeout=_number(raw, "timeout", StorageConfig.timeout, what),
        transfer_timeout=transfer_timeout,
        parallel=max(1, int(_number(raw, "parallel", StorageConfig.parallel, what, int))),
        interface=interface,
        interface_options=cls.parse_config(InterfaceSettings(
            what, urls, {key: raw[key] for key in cls.config_keys if key in raw}, transfer_timeout)),
        **_validation_keys(raw, what),  # type: ignore[arg-type]
    )


def read_storage_config(name: str) -> StorageConfig:
    """The storage element ``name`` from Luigi's config (luigi.cfg, $LUIGI_CONFIG_PATH)."""
    config = luigi.configuration.get_config()
    section = SECTION_PREFIX + name
    if not config.has_section(section):
        known = sorted(s[len(SECTION_PREFIX):] for s in config.sections() if s.startswith(SECTION_PREFIX))
        raise StorageConfigError(f"no storage element {name!r}: add a [{section}] section with "
                                 f"`base = <url>` to your luigi config (configured: {known or 'none'})")
    return parse_section(name, {key: config.get(section, key) for key in config.options(section)})
