"""Parameter types analyses need beyond Luigi's own.

Each type parses the command-line string into a hashable value (Luigi caches task
instances by parameter values) and serialises it back. A value that cannot be parsed
raises :class:`~pylaw.errors.ParameterValueError` naming the parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import luigi

from pylaw.errors import ParameterValueError


class NamedParameterMixin:
    """Builds errors that name the parameter (Luigi records the attribute name it is bound to)."""

    def _invalid(self, value: object, why: str) -> ParameterValueError:
        name = (getattr(self, "_attribute_name", None) or "?").replace("_", "-")
        return ParameterValueError(f"invalid value {value!r} for parameter --{name}: {why}")


class CSVParameter(NamedParameterMixin, luigi.Parameter):
    """Comma-separated values parsed into a tuple of typed items.

    ``inner`` is a Luigi parameter that parses each item (default: plain strings);
    ``unique`` drops repeats, ``sort`` sorts, ``min_len``/``max_len`` bound the length.
    """

    def __init__(
        self,
        *args: Any,
        inner: luigi.Parameter | None = None,
        unique: bool = False,
        sort: bool = False,
        min_len: int | None = None,
        max_len: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.inner = inner or luigi.Parameter()
        self.unique, self.sort, self.min_len, self.max_len = unique, sort, min_len, max_len
        kwargs.setdefault("default", ())
        super().__init__(*args, **kwargs)

    def parse(self, x: str) -> tuple:
        items = [item.strip() for item in x.split(",")] if x.strip() else []
        try:
            values = [self.inner.parse(item) for item in items]
        except ParameterValueError:
            raise
        except Exception as exc:
            raise self._invalid(x, f"an item could not be parsed ({exc})") from exc
        return CSVParameter.items(self, values)

    def normalize(self, x: Any) -> tuple:
        if isinstance(x, str):
            return self.parse(x)
        return CSVParameter.items(self, x)

    def items(self, x: Any) -> tuple:
        """Normalise one sequence of items (checks uniqueness, order and length)."""
        values = list(x) if isinstance(x, Iterable) and not isinstance(x, str) else [x]
        values = [self.inner.normalize(v) for v in values]
        if self.unique:
            values = list(dict.fromkeys(values))
        if self.sort:
            values.sort()
        if self.min_len is not None and len(values) < self.min_len:
            raise self._invalid(x, f"needs at least {self.min_len} items, got {len(values)}")
        if self.max_len is not None and len(values) > self.max_len:
            raise self._invalid(x, f"takes at most {self.max_len} items, got {len(values)}")
        return tuple(values)

    def serialize(self, x: Iterable) -> str:
        return ",".join(str(self.inner.serialize(v)) for v in x)


class MultiCSVParameter(CSVParameter):
    """Groups of comma-separated values separated by colons: ``a,b:c`` -> ``(("a","b"),("c",))``."""

    def parse(self, x: str) -> tuple:
        if not x.strip():
            return ()
        return tuple(CSVParameter.parse(self, group) for group in x.split(":"))

    def normalize(self, x: Any) -> tuple:
        if isinstance(x, str):
            return self.parse(x)
        return tuple(CSVParameter.normalize(self, group) if isinstance(group, str)
                     else CSVParameter.items(self, group) for group in x)

    def serialize(self, x: Iterable) -> str:
        return ":".join(CSVParameter.serialize(self, group) for group in x)


@dataclass(frozen=True)
class Ranges:
    """A union of closed integer intervals; ``stop=None`` means open-ended."""

    intervals: tuple[tuple[int, int | None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def __contains__(self, n: object) -> bool:
        if not isinstance(n, int):
            return False
        return any(start <= n and (stop is None or n <= stop) for start, stop in self.intervals)

    def select(self, numbers: Iterable[int]) -> list[int]:
        """The given numbers that fall in one of the intervals, in their order."""
        return [n for n in numbers if n in self]

    def __iter__(self) -> Iterator[int]:
        """Every number of a bounded union (open-ended unions cannot be iterated)."""
        for start, stop in self.intervals:
            if stop is None:
                raise ValueError(f"cannot enumerate the open-ended range {start}-")
            yield from range(start, stop + 1)

    def __str__(self) -> str:
        parts = []
        for start, stop in self.intervals:
            if stop is None:
                parts.append(f"{start}-")
            elif start == stop:
                parts.append(str(start))
            else:
                parts.append(f"{start}-{stop}")
        return ",".join(parts)


_RANGE_ITEM = re.compile(r"^\s*(\d+)\s*(?:(-)\s*(\d*)\s*)?$")


class RangeParameter(NamedParameterMixin, luigi.Parameter[Ranges]):
    """Integer ranges such as ``0-9,15,20-`` (``20-``: from 20 to the end)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", Ranges())
        super().__init__(*args, **kwargs)

    def parse(self, x: str) -> Ranges:
        intervals: list[tuple[int, int | None]] = []
        for item in filter(None, (part.strip() for part in x.split(","))):
            match = _RANGE_ITEM.match(item)
            if not match:
                raise self._invalid(x, f"{item!r} is not N, N-M or N- (non-negative integers)")
            start = int(match.group(1))
            stop: int | None = start
            if match.group(2):
                stop = int(match.group(3)) if match.group(3) else None
            if stop is not None and stop < start:
                raise self._invalid(x, f"{item!r} ends before it starts")
            intervals.append((start, stop))
        return Ranges(tuple(intervals))

    def normalize(self, x: Any) -> Ranges:
        if isinstance(x, Ranges):
            return x
        if isinstance(x, str):
            return self.parse(x)
        if isinstance(x, int):
            return Ranges(((x, x),))
        if isinstance(x, Iterable):
            return Ranges(tuple((int(n), int(n)) for n in x))
        raise self._invalid(x, "expected a string like '0-9,15' or integers")

    def serialize(self, x: Ranges) -> str:
        return str(x)


_DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_ITEM = re.compile(r"(\d+(?:\.\d*)?)\s*([wdhms])")


class DurationParameter(NamedParameterMixin, luigi.Parameter):
    """A duration like ``1h30m``, ``2d``, ``90s`` or plain seconds, as float seconds."""

    def parse(self, x: str) -> float:
        text = x.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            return self.normalize(seconds)
        items = _DURATION_ITEM.findall(text)
        if not items or _DURATION_ITEM.sub("", text).strip():
            raise self._invalid(x, "expected a duration like 1h30m, 2d, 45s or a number of seconds")
        return sum(float(number) * _DURATION_UNITS[unit] for number, unit in items)

    def normalize(self, x: Any) -> float:
        if isinstance(x, str):
            return self.parse(x)
        seconds = float(x)
        if not math.isfinite(seconds):
            raise self._invalid(x, "a duration must be finite")
        if seconds < 0:
            raise self._invalid(x, "durations cannot be negative")
        return seconds

    def serialize(self, x: float) -> str:
        rest, parts = float(x), []
        for unit, size in _DURATION_UNITS.items():
            if rest >= size and unit != "s":
                count, rest = divmod(rest, size)
                parts.append(f"{int(count)}{unit}")
        if rest or not parts:
            parts.append(f"{rest:g}s")
        return "".join(parts)


_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12, "p": 10**15, "pb": 10**15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
}
_BYTES = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*$")


class BytesParameter(NamedParameterMixin, luigi.Parameter):
    """A size like ``2GB`` (decimal), ``512MiB`` (binary) or plain bytes, as int bytes."""

    def parse(self, x: str) -> int:
        match = _BYTES.match(x.lower())
        if not match or match.group(2) not in _BYTE_UNITS:
            raise self._invalid(x, "expected a size like 2GB, 512MiB, 10k or a number of bytes")
        return int(float(match.group(1)) * _BYTE_UNITS[match.group(2)])

    def normalize(self, x: Any) -> int:
        if isinstance(x, str):
            return self.parse(x)
        size = int(x)
        if size < 0:
            raise self._invalid(x, "sizes cannot be negative")
        return size

    def serialize(self, x: int) -> str:
        return str(int(x))
