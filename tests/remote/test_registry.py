"""The interface registry: built-in names, names registered in code or by entry point, lazy loading."""

from __future__ import annotations

import sys
import textwrap

import pytest

from pylaw.errors import RemoteBackendMissingError, StorageConfigError
from pylaw.target.remote import registry
from pylaw.target.remote.config import parse_section
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.interface import InterfaceSettings
from pylaw.target.remote.local import LocalInterface
from pylaw.target.remote.memory import MemoryInterface


class TaggedMemory(MemoryInterface):
    """A third-party interface with a key of its own, checked by its own parse_config."""

    config_keys = ("tag",)

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    @classmethod
    def parse_config(cls, settings: InterfaceSettings) -> dict[str, object]:
        tag = settings.options.get("tag", "")
        if not tag.isalpha():
            raise settings.error("tag", "must be letters only")
        return {**super().parse_config(settings), "tag": tag}


@pytest.fixture
def registered():
    registry.register_interface("tagged", TaggedMemory)
    yield
    registry.unregister_interface("tagged")


def test_builtin_names() -> None:
    assert {"gfal", "xrootd", "local", "memory"} <= set(registry.interface_names())
    assert registry.interface_class("LOCAL") is LocalInterface


def test_registered_class_validates_its_own_keys(registered) -> None:
    config = parse_section("t", {"base": "memory://t/a", "interface": "tagged", "tag": "blue"})
    fs = RemoteFileSystem.from_config(config)
    assert isinstance(fs.interface, TaggedMemory) and fs.interface.tag == "blue"
    with pytest.raises(StorageConfigError, match=r"\[storage:t\]: tag = '42' must be letters only"):
        parse_section("t", {"base": "memory://t/a", "interface": "tagged", "tag": "42"})
    with pytest.raises(StorageConfigError, match=r"\[storage:t\] has the unknown key 'tag'"):
        parse_section("t", {"base": "memory://t/a", "interface": "memory", "tag": "blue"})


def test_a_module_path_is_imported_only_when_used() -> None:
    registry.register_interface("absent", "no_such_package_pylaw.backend:Interface", "the no-such package")
    try:
        assert "absent" in registry.interface_names()  # registering imported nothing
        with pytest.raises(RemoteBackendMissingError, match=r"\[storage:a\]: interface 'absent' needs the no-such"):
            parse_section("a", {"base": "x://h/a", "interface": "absent"})
    finally:
        registry.unregister_interface("absent")


def test_entry_point_of_an_installed_distribution(tmp_path, monkeypatch) -> None:
    """A real distribution on sys.path (dist-info with entry_points.txt), found by importlib.metadata."""
    (tmp_path / "thirdparty_store.py").write_text(textwrap.dedent("""
        from pylaw.target.remote.memory import MemoryInterface
        class StoreInterface(MemoryInterface):
            pass
    """))
    dist = tmp_path / "thirdparty_store-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-store\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pylaw.file_interfaces]\nthirdstore = thirdparty_store:StoreInterface\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_ENTRY_POINTS_READ", False)
    try:
        cls = registry.interface_class("thirdstore")
        assert cls.__name__ == "StoreInterface" and cls.__module__ == "thirdparty_store"
        fs = RemoteFileSystem.from_config(parse_section("e", {"base": "memory://ep/a", "interface": "thirdstore"}))
        fs.mkdir("/x")
        assert fs.isdir("/x")
    finally:
        registry.unregister_interface("thirdstore")
        sys.modules.pop("thirdparty_store", None)


def test_bad_registrations_are_refused() -> None:
    with pytest.raises(ValueError, match="module:Class"):
        registry.register_interface("bad", "just_a_module")
    with pytest.raises(ValueError, match="must be a word"):
        registry.register_interface("two words", LocalInterface)
    registry.register_interface("notaclass", "pylaw.target.remote.local:SCHEME")
    try:
        with pytest.raises(StorageConfigError, match="not a FileInterface subclass"):
            registry.interface_class("notaclass")
    finally:
        registry.unregister_interface("notaclass")


def test_a_replaced_builtin_returns_when_unregistered() -> None:
    registry.register_interface("local", MemoryInterface)
    assert registry.interface_class("local") is MemoryInterface
    registry.unregister_interface("local")
    assert registry.interface_class("local") is LocalInterface
