import os
import subprocess
import sys

import luigi
import pytest

import pylaw
from pylaw.errors import PathEscapeError
from pylaw.storepath import MAX_PART_BYTES, ensure_inside, sanitize_part
from tests.conftest import ROOT


class Upstream(pylaw.Task):
    dataset = luigi.Parameter(default="tth")

    def output(self):
        return self.local_target(f"{self.dataset}.json")


class Downstream(pylaw.Task):
    dataset = luigi.Parameter(default="tth")
    extra = luigi.IntParameter(default=1)

    def requires(self):
        return self.req(Upstream)

    def output(self):
        return self.local_target("result.json")


class Rewriting(pylaw.Task):
    """Lower-cases its name before caching: two spellings are one task."""

    name = luigi.Parameter()

    @classmethod
    def modify_param_values(cls, values):
        values = super().modify_param_values(values)
        values["name"] = values["name"].lower()
        return values


def test_req_passes_shared_parameters_and_overrides():
    down = Downstream(version="v3", dataset="ttbar")
    up = down.requires()
    assert (up.version, up.dataset) == ("v3", "ttbar")
    assert down.req(Upstream, dataset="dy").dataset == "dy"


def test_modify_param_values_runs_before_instance_cache():
    a, b = Rewriting(version="v", name="JES"), Rewriting(version="v", name="jes")
    assert a is b and a.task_id == b.task_id and a.name == "jes"


def test_store_layout(isolated):
    target = Downstream(version="v1", dataset="ttbar").output()
    assert target.path == os.path.join(str(isolated), "Downstream", "v1", "dataset=ttbar", "extra=1",
                                       "result.json")


def test_store_root_from_config(tmp_path, monkeypatch):
    monkeypatch.delenv("PYLAW_STORE")
    config = luigi.configuration.get_config()
    config.set("pylaw", "store", str(tmp_path / "cfgstore"))
    try:
        assert Upstream(version="v").output().path.startswith(str(tmp_path / "cfgstore") + "/")
    finally:
        config.remove_option("pylaw", "store")


@pytest.mark.parametrize("evil", ["../../../etc", "/etc/passwd", "a/../../b", "..", ".", "x\x00y",
                                  "z" * 5000, "\n\t", "..\\..\\win", ""])
def test_parameter_values_cannot_escape_the_store(isolated, evil):
    task = Upstream(version=evil, dataset=evil)
    path = task.output().path
    assert path.startswith(str(isolated) + "/Upstream/")
    assert os.path.normpath(path) == path
    assert "\x00" not in path
    assert all(len(part.encode()) <= MAX_PART_BYTES for part in path.split("/"))
    task.output().dump({"ok": True})  # the path is usable
    assert os.path.realpath(path).startswith(str(isolated))


def test_long_values_stay_distinct():
    assert sanitize_part("a" * 500) != sanitize_part("a" * 499 + "b")


def test_author_given_subdirectories_are_kept_but_sanitised(isolated):
    task = Upstream(version="v1")
    assert task.local_path("plots/a.png").endswith("/plots/a.png")
    assert task.local_path("../../x.png").startswith(str(isolated) + "/Upstream/v1/")


def test_ensure_inside():
    assert ensure_inside("/a/b", "/a/b/c") == "/a/b/c"
    with pytest.raises(PathEscapeError):
        ensure_inside("/a/b", "/a/bc")


def test_import_has_no_side_effects():
    import logging
    import subprocess
    import sys

    code = ("import logging, luigi, luigi.task; before = dict(vars(luigi.task.Task)); "
            "root = list(logging.getLogger().handlers); import pylaw; "
            "assert dict(vars(luigi.task.Task)) == before, 'luigi.Task patched'; "
            "assert logging.getLogger().handlers == root, 'logging configured'; print('clean')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "clean", result.stderr
    assert logging  # keep the import used


def test_public_api_is_curated():
    assert sorted(pylaw.__all__) == sorted(set(pylaw.__all__))
    for name in pylaw.__all__:
        assert hasattr(pylaw, name), name
    from pylaw.errors import PylawError

    assert issubclass(pylaw.PylawError, Exception) and pylaw.PylawError is PylawError


def test_glite_workflow_is_public_and_lazy():
    import subprocess
    import sys

    code = ("import sys, pylaw; assert 'pylaw.workflow.glite' not in sys.modules; "
            "print(pylaw.GliteWorkflow.workflow_type)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["glite"], result.stderr
    assert "GliteWorkflow" in pylaw.__all__


def test_lazy_public_names_resolve_without_slowing_import():
    import subprocess
    import sys

    code = ("import sys, pylaw; assert 'pylaw.workflow.slurm' not in sys.modules; "
            "assert 'pylaw.target.remote.target' not in sys.modules; "
            "print(pylaw.SlurmWorkflow.workflow_type, pylaw.DCacheTarget.__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["slurm", "DCacheTarget"], result.stderr
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pylaw.Nope  # noqa: B018


@pytest.mark.parametrize(("a", "b"), [("mc/2017", "mc_2017"), ("a\nb", "a_b"), (".x", "_.x"), ("", "_"),
                                      ("a\\b", "a_b"), ("x", "x-" + "0" * 12), ("mc/2017", "mc_2017-" + "0" * 12),
                                      ("a" * 500, "a" * 499 + "b")])
def test_values_differing_only_in_unsafe_characters_get_distinct_directories(isolated, a, b):
    first, second = Upstream(version="v1", dataset=a), Upstream(version="v1", dataset=b)
    assert first.output().path != second.output().path
    first.output().dump({"dataset": a})
    assert not second.output().exists(), "the second value would reuse the first one's result"


def test_safe_values_stay_readable(isolated):
    path = Upstream(version="v1", dataset="mc_2017").output().path
    assert path == f"{isolated}/Upstream/v1/dataset=mc_2017/mc_2017.json"
    assert sanitize_part("mc/2017").startswith("mc_2017-") and sanitize_part("hist.json") == "hist.json"
    assert sanitize_part("a/b.json").endswith(".json")


IMPORT_ORDER_MODULES = {
    "order_base.py": "import luigi\nimport pylaw\n\n\nclass Base(pylaw.Task):\n"
                     "    a = luigi.Parameter(default='x')\n",
    "order_mixin.py": "import luigi\nimport pylaw\n\n\nclass Mixin(pylaw.Task):\n"
                      "    m = luigi.Parameter(default='y')\n",
    "order_final.py": ("import luigi\nfrom order_base import Base\nfrom order_mixin import Mixin\n\n\n"
                       "class Final(Base, Mixin):\n    c = luigi.Parameter(default='z')\n"),
}


def test_store_path_does_not_depend_on_which_module_a_process_imports_first(tmp_path) -> None:
    """Luigi orders parameters by creation; pylaw by declaration, so pyl, luigi and jobs agree."""
    for name, text in IMPORT_ORDER_MODULES.items():
        (tmp_path / name).write_text(text)
    paths = []
    for first in ("order_mixin", "order_base"):
        code = (f"import {first}, order_final\n"
                "print(order_final.Final(version='v').local_path())")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
                                     "PYLAW_STORE": str(tmp_path / "store")})
        paths.append(result.stdout.strip())
    assert paths[0] == paths[1]
    assert paths[0].endswith("/Final/v/m=y/a=x/c=z")  # bases first (reversed MRO), then the class's own


class WithPrivateToken(pylaw.Task):
    dataset = luigi.Parameter(default="ttbar")
    token = luigi.Parameter(default="", visibility=luigi.parameter.ParameterVisibility.PRIVATE)

    def output(self):
        return self.local_target("out.txt")


def test_private_parameter_values_never_reach_the_store_path() -> None:
    task = WithPrivateToken(version="v1", token="s3cr3t-value")
    assert "s3cr3t" not in task.output().path
    # as in Luigi's task id, which leaves private parameters out: the same task, the same path
    assert task.task_id == WithPrivateToken(version="v1", token="other").task_id
    assert task.output().path == WithPrivateToken(version="v1", token="other").output().path
