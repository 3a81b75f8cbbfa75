import collections
import os
import subprocess

import luigi
import pytest

import pylaw
from pylaw.errors import ShiftError
from pylaw.shift import effective_shift, shift_role, visible_shifts
from tests.conftest import PYTHON, ROOT, build, cli_env

pylaw.register_shift_sources("jes", "jer", "pdf", "q2", "btag")
RAN: collections.Counter = collections.Counter()


class Recorded(pylaw.ShiftTask):
    def output(self):
        return self.local_target("out.json")

    def run(self):
        RAN[(type(self).__name__, self.shift)] += 1
        self.output().dump({"shift": self.shift})


class Selection(Recorded):
    shifts = set()


class Reconstruction(Recorded):
    shifts = {"jes_up", "jes_down", "jer_up", "jer_down"}
    upstream = (Selection,)

    def requires(self):
        return self.req(Selection)


class Evaluation(Recorded):
    shifts = {"pdf_up", "pdf_down", "q2_up", "q2_down"}
    upstream = (Reconstruction,)

    def requires(self):
        return self.req(Reconstruction)


class Inference(pylaw.Task):
    upstream = (Evaluation,)

    def requires(self):
        return pylaw.req_shifts(self, Evaluation)

    def output(self):
        return self.local_target("limits.json")

    def run(self):
        RAN[("Inference", "all")] += 1
        self.output().dump(sorted(self.input()))


@pytest.fixture(autouse=True)
def reset():
    RAN.clear()


def test_reference_table_counts_from_what_ran():
    assert build(Inference(version="v1"), workers=1)
    per_task = collections.Counter(task for task, _ in RAN.elements())
    assert per_task == {"Selection": 1, "Reconstruction": 5, "Evaluation": 9, "Inference": 1}
    assert {shift for task, shift in RAN if task == "Selection"} == {"nominal"}
    assert {shift for task, shift in RAN if task == "Reconstruction"} == {
        "nominal", "jes_up", "jes_down", "jer_up", "jer_down"}
    assert max(RAN.values()) == 1, "some task ran twice"


def test_unaffected_shift_is_the_nominal_instance():
    nominal = Selection(version="v1")
    shifted = Selection(version="v1", shift="jes_up")
    assert shifted is nominal and shifted.task_id == nominal.task_id
    assert shifted.output().path == nominal.output().path


def test_effective_shift_is_part_of_the_path(isolated):
    path = Evaluation(version="v1", shift="jes_up").output().path
    assert path == os.path.join(str(isolated), "Evaluation", "v1", "shift=jes_up", "out.json")


def test_requirements_resolve_their_own_shift():
    evaluation = Evaluation(version="v1", shift="pdf_up")
    assert evaluation.shift == "pdf_up"
    assert evaluation.requires().shift == "nominal"
    assert Evaluation(version="v1", shift="jer_down").requires().shift == "jer_down"


def test_static_knowledge_from_classes():
    assert visible_shifts(Selection) == frozenset()
    assert visible_shifts(Evaluation) == {"jes_up", "jes_down", "jer_up", "jer_down", "pdf_up", "pdf_down",
                                          "q2_up", "q2_down"}
    assert shift_role(Evaluation, "jes_up") == "inherits"
    assert shift_role(Evaluation, "q2_up") == "implements"
    assert shift_role(Reconstruction, "q2_up") == "nominal"
    assert Evaluation.__dict__["_visible_shifts"] is visible_shifts(Evaluation), "cached per class"


@pytest.mark.parametrize("bad,message", [("jes_sideways", "malformed shift"), ("JES_up", "malformed shift"),
                                         ("lumi_up", "unknown shift 'lumi_up'"), ("", "malformed")])
def test_bad_shifts_are_clear_errors(bad, message):
    with pytest.raises(ShiftError, match=message) as info:
        Evaluation(version="v1", shift=bad)
    assert "known: nominal, btag_up, btag_down, jer_up" in str(info.value)


def test_shift_sources_from_config():
    config = luigi.configuration.get_config()
    config.set("pylaw", "shift_sources", "lumi, trigger")
    try:
        assert effective_shift(Selection, "lumi_up") == "nominal"
    finally:
        config.remove_option("pylaw", "shift_sources")
    with pytest.raises(ShiftError):
        effective_shift(Selection, "lumi_up")


def test_undeclared_shifted_requirement_is_an_error():
    class Sloppy(pylaw.ShiftTask):
        def requires(self):
            return self.req(Reconstruction)

    with pytest.raises(ShiftError, match=r"does not list it in Sloppy\.upstream"):
        Sloppy(version="v1").requires()


# -- diamonds and shifts implemented on two branches of the graph --------------------

class Base(Recorded):
    pass


class Left(Recorded):
    shifts = {"btag_up", "btag_down"}
    upstream = (Base,)

    def requires(self):
        return self.req(Base)


class Right(Recorded):
    shifts = {"btag_up", "btag_down", "jes_up"}
    upstream = (Base,)

    def requires(self):
        return self.req(Base)


class Top(Recorded):
    upstream = (Left, Right)

    def requires(self):
        return {"left": self.req(Left), "right": self.req(Right)}


def test_diamond_shares_the_common_ancestor():
    assert build(Top(version="v1"), Top(version="v1", shift="btag_up"), Top(version="v1", shift="jes_up"))
    assert RAN[("Base", "nominal")] == 1 and len([k for k in RAN if k[0] == "Base"]) == 1
    assert RAN[("Left", "btag_up")] == 1 and RAN[("Right", "btag_up")] == 1
    assert RAN[("Left", "nominal")] == 1, "Left does not see jes: its jes_up is the nominal instance"
    assert RAN[("Right", "jes_up")] == 1 and RAN[("Top", "jes_up")] == 1
    assert Top(version="v1", shift="jes_up").requires()["left"] is Left(version="v1")


# -- workflows whose branches are ShiftTasks -----------------------------------------

class ShiftedSelection(pylaw.ShiftTask, pylaw.LocalWorkflow):
    shifts = {"jes_up"}

    def create_branch_map(self):
        return [0, 1, 2]

    def output(self):
        return self.local_target(f"sel_{self.branch}.json")

    def run(self):
        RAN[("ShiftedSelection", self.shift)] += 1
        self.output().dump(self.shift)


def test_workflow_branches_carry_the_effective_shift(isolated):
    assert build(ShiftedSelection(version="v1", shift="jes_up"), ShiftedSelection(version="v1", shift="pdf_up"))
    assert RAN == {("ShiftedSelection", "jes_up"): 3, ("ShiftedSelection", "nominal"): 3}
    branch = ShiftedSelection(version="v1", shift="jes_up", branch=1)
    assert branch.output().load() == "jes_up" and "/shift=jes_up/" in branch.output().path
    assert ShiftedSelection(version="v1", shift="q2_down", branch=1) is ShiftedSelection(version="v1", branch=1)


def test_shift_table_cli(tmp_path):
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pylaw"), "shifts", "tests.test_shift",
                             "Inference"], cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:]}
    assert result.stdout.split()[:5] == ["shift", "Selection", "Reconstruction", "Evaluation", "Inference"]
    assert rows["nominal"] == ["nominal", "nominal", "nominal", "combines"]
    assert rows["jes_up"] == ["nominal", "implements", "inherits", "combines"]
    assert rows["q2_down"] == ["nominal", "nominal", "implements", "combines"]


def test_print_status_shows_effective_shift(tmp_path):
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), "Evaluation", "--module",
                             "tests.test_shift", "--version", "v1", "--shift", "pdf_up", "--print-status", "-1"],
                            cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("> Evaluation(shift=pdf_up): missing")
    assert any(line.strip().startswith("> Reconstruction(shift=nominal)") for line in lines)
