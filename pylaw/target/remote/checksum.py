"""Checksums of file contents: the algorithms pylaw knows, computed while data streams by.

Storage elements report checksums of the files they hold (XRootD's ``xrootd.chksum``,
dCache over WebDAV ``Want-Digest``, GFAL2's ``checksum()``); pylaw compares them with
checksums it computes locally. A :class:`Checksummer` is fed the bytes as they are
written or read, so a checksum never costs a pass of its own over a file that is being
written anyway; :func:`file_checksums` reads an existing file once, in blocks, for all
algorithms at the same time.

Hex digests are compared in a normal form (:func:`normalize`): lower case, and for
adler32 eight digits (servers differ in whether they print leading zeros).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from typing import Any

#: the algorithms every part of pylaw understands (config, interfaces, records)
ALGORITHMS = ("adler32", "md5")
#: the bytes read per block when a whole file is checksummed
BLOCK = 1 << 20


def check_algorithm(algorithm: str) -> str:
    """``algorithm`` in lower case, or ValueError naming the supported ones."""
    name = algorithm.strip().lower()
    if name not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}: pylaw supports {', '.join(ALGORITHMS)}")
    return name


def normalize(algorithm: str, value: str) -> str:
    """A hex digest in the form pylaw compares: lower case, adler32 zero-padded to eight digits.

    Raises ValueError for a value that is not hex of the algorithm's size (a server's
    answer pylaw does not understand must never pass for a checksum).
    """
    text = value.strip().lower()
    digits = 8 if algorithm == "adler32" else 32
    if algorithm == "adler32" and text.startswith("0x"):
        text = text[2:]
    if not text or len(text) > digits or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{value!r} is not an {algorithm} checksum")
    if algorithm != "adler32" and len(text) != digits:
        raise ValueError(f"{value!r} is not an {algorithm} checksum ({digits} hex digits)")
    return text.zfill(digits)


class Checksummer:
    """Running checksums of a byte stream, for several algorithms at once.

    ``update()`` every chunk in order; ``hexdigest(algorithm)`` may be asked at any time
    (it does not end the stream).
    """

    def __init__(self, algorithms: Iterable[str] = ALGORITHMS) -> None:
        self.algorithms = tuple(check_algorithm(a) for a in algorithms)
        self.size = 0
        self._adler = 1 if "adler32" in self.algorithms else None
        self._md5: Any = hashlib.md5(usedforsecurity=False) if "md5" in self.algorithms else None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self._adler is not None:
            self._adler = zlib.adler32(data, self._adler)
        if self._md5 is not None:
            self._md5.update(data)

    def hexdigest(self, algorithm: str) -> str:
        name = check_algorithm(algorithm)
        if name not in self.algorithms:
            raise ValueError(f"this checksummer computes {self.algorithms}, not {name}")
        if name == "adler32":
            return f"{self._adler:08x}"
        return str(self._md5.hexdigest())

    def digests(self) -> dict[str, str]:
        """Algorithm -> hex digest of everything fed so far."""
        return {name: self.hexdigest(name) for name in self.algorithms}


def file_checksums(path: str, algorithms: Iterable[str] = ALGORITHMS) -> Checksummer:
    """The checksums of the local file ``path``: one read in blocks of :data:`BLOCK` bytes."""
    summer = Checksummer(algorithms)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            summer.update(block)
    return summer
