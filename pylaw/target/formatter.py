"""Formatters: how ``load()`` / ``dump()`` read and write a file, picked by extension.

A formatter works on an open file object, so writes go through the target's atomic
``open("w")`` and never leave a half-written file under the final name. Optional
libraries (PyYAML, NumPy, matplotlib) are imported only when a file needs them.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import IO, Any

from pylaw.errors import FormatterError


class Formatter:
    """Reads and writes one kind of file; subclasses set ``extensions`` and ``binary``."""

    name = "base"
    extensions: tuple[str, ...] = ()
    binary = False

    def load(self, f: IO, **kwargs: Any) -> Any:
        raise FormatterError(f"the {self.name} formatter cannot read files")

    def dump(self, f: IO, obj: Any, **kwargs: Any) -> None:
        raise FormatterError(f"the {self.name} formatter cannot write files")


class JSONFormatter(Formatter):
    name, extensions = "json", (".json",)

    def load(self, f: IO, **kwargs: Any) -> Any:
        return json.load(f, **kwargs)

    def dump(self, f: IO, obj: Any, **kwargs: Any) -> None:
        kwargs.setdefault("indent", 2)
        json.dump(obj, f, **kwargs)


class YAMLFormatter(Formatter):
    name, extensions = "yaml", (".yaml", ".yml")

    @staticmethod
    def _yaml() -> Any:
        try:
            import yaml
        except ImportError as exc:
            raise FormatterError("reading or writing YAML needs PyYAML: pip install pyyaml") from exc
        return yaml

    def load(self, f: IO, **kwargs: Any) -> Any:
        return self._yaml().safe_load(f)

    def dump(self, f: IO, obj: Any, **kwargs: Any) -> None:
        self._yaml().safe_dump(obj, f, **kwargs)


class PickleFormatter(Formatter):
    name, extensions, binary = "pickle", (".pickle", ".pkl"), True

    def load(self, f: IO, **kwargs: Any) -> Any:
        return pickle.load(f, **kwargs)

    def dump(self, f: IO, obj: Any, **kwargs: Any) -> None:
        pickle.dump(obj, f, **kwargs)


class TextFormatter(Formatter):
    name, extensions = "text", (".txt", ".log", ".text")

    def load(self, f: IO, **kwargs: Any) -> Any:
        return f.read()

    def dump(self, f: IO, obj: Any, **kwargs: Any) -> None:
        f.write(str(obj))


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise FormatterError("reading or writing .npy/.npz needs NumPy: pip install numpy") from exc
    return numpy


class NumpyFormatter(Formatter):
    name, extensions, binary = "numpy", (".npy",), True

    def load(self, f: IO, **kwargs: Any) -> Any:
        return _numpy().load(f, **kwargs)

    def dump(self, f: IO, obj: Any, **kwargs: Any) -> None:
        _numpy().save(f, obj, **kwargs)


class NumpyArchiveFormatter(Formatter):
    """``.npz``: loads into a plain dict of arrays (the file is closed afterwards)."""

    name, extensions, binary = "npz", (".npz",), True

    def load(self, f: IO, **kwargs: Any) -> Any:
        with _numpy().load(f, **kwargs) as archive:
            return {key: archive[key] for key in archive.files}

    def dump(self, f: IO, obj: Any, **kwargs: Any) -> None:
        save = _numpy().savez_compressed if kwargs.pop("compress", True) else _numpy().savez
        save(f, **obj)


class FigureFormatter(Formatter):
    """Images and PDFs: ``dump(fig)`` saves a matplotlib figure in the extension's format."""

    name, extensions, binary = "figure", (".png", ".pdf", ".svg"), True

    def dump(self, f: IO, obj: Any, **kwargs: Any) -> None:
        kwargs.setdefault("format", os.path.splitext(getattr(f, "target_path", ""))[1][1:] or "png")
        obj.savefig(f, **kwargs)


_FORMATTERS: dict[str, Formatter] = {}
_BY_NAME: dict[str, Formatter] = {}


def register_formatter(formatter: Formatter) -> None:
    """Make ``formatter`` the one used for its extensions (and reachable by its name)."""
    _BY_NAME[formatter.name] = formatter
    for extension in formatter.extensions:
        _FORMATTERS[extension] = formatter


for _formatter in (JSONFormatter(), YAMLFormatter(), PickleFormatter(), TextFormatter(),
                   NumpyFormatter(), NumpyArchiveFormatter(), FigureFormatter()):
    register_formatter(_formatter)


def find_formatter(path: str, name: str | None = None) -> Formatter:
    """The formatter called ``name``, or else the one registered for ``path``'s extension."""
    if name is not None:
        if name not in _BY_NAME:
            raise FormatterError(f"unknown formatter {name!r}; known: {', '.join(sorted(_BY_NAME))}")
        return _BY_NAME[name]
    extension = os.path.splitext(path)[1].lower()
    if extension not in _FORMATTERS:
        raise FormatterError(
            f"no formatter for {path!r} (extension {extension or 'none'!r}); pass formatter= "
            f"one of {', '.join(sorted(_BY_NAME))} or register one with register_formatter()"
        )
    return _FORMATTERS[extension]
