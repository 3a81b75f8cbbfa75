import collections
import os
import subprocess

import luigi
import pytest

import pylaw
from pylaw.errors import ShiftError
from pylaw.shift import known_shifts, resolve_shift, shift_role, visible_shifts
from tests.conftest import PYTHON, ROOT, build, cli_env

# The seed's chain written with shifts and requires() only: no upstream, no declared sources.
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

    def requires(self):
        return self.req(Selection)


class Evaluation(Recorded):
    shifts = {"pdf_up", "pdf_down", "q2_up", "q2_down"}

    def requires(self):
        return self.req(Reconstruction)


class Inference(pylaw.Task):
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
    assert {shift for task, shift in RAN if task == "Evaluation"} == set(known_shifts()) - {"btag_up", "btag_down"}
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


def test_what_a_task_sees_comes_from_its_requirements():
    assert visible_shifts(Selection(version="v1")) == frozenset()
    assert visible_shifts(Evaluation(version="v1", shift="q2_up")) == {
        "jes_up", "jes_down", "jer_up", "jer_down", "pdf_up", "pdf_down", "q2_up", "q2_down"}
    evaluation = Evaluation(version="v1")
    assert shift_role(evaluation, "jes_up") == "inherits"
    assert shift_role(evaluation, "q2_up") == "implements"
    assert shift_role(Reconstruction(version="v1"), "q2_up") == "nominal"
    assert evaluation.__dict__["_pylaw_visible_shifts"] is visible_shifts(evaluation), "cached on the instance"


class Counted(Recorded):
    """Counts its requires() calls: resolution must walk each instance once."""

    calls = 0

    def requires(self):
        type(self).calls += 1
        return self.req(Reconstruction)


def test_resolution_is_cached_per_instance():
    Counted.calls = 0
    for shift in ("jes_up", "jes_down", "pdf_up", "q2_down", "jes_up"):
        Counted(version="cache", shift=shift)
    assert Counted.calls == 1
    assert Counted(version="cache", shift="jes_up").shift == "jes_up"
    assert Counted(version="cache", shift="pdf_up") is Counted(version="cache")


@pytest.mark.parametrize("bad,message", [("jes_sideways", "malformed shift"), ("JES_up", "malformed shift"),
                                         ("lumi_up", "unknown shift 'lumi_up'"), ("", "malformed")])
def test_bad_shifts_are_clear_errors(bad, message):
    with pytest.raises(ShiftError, match=message) as info:
        Evaluation(version="v1", shift=bad)
    assert "known: nominal, btag_up, btag_down, jer_up, jer_down, jes_up" in str(info.value)


def test_sources_follow_from_the_classes_that_declare_them():
    with pytest.raises(ShiftError, match="unknown shift 'zz_up'"):
        Selection(version="v1", shift="zz_up")

    class LateArrival(Recorded):  # defining the class is what makes zz known
        shifts = {"zz_up"}

    assert Selection(version="v1", shift="zz_up") is Selection(version="v1")
    assert "zz_down" in known_shifts()


def test_malformed_declared_shift_fails_at_class_definition():
    with pytest.raises(ShiftError, match=r"malformed shift 'JES_up' in Loud\.shifts"):
        class Loud(Recorded):
            shifts = {"JES_up"}


def test_shift_sources_from_config():
    config = luigi.configuration.get_config()
    config.set("pylaw", "shift_sources", "lumi, trigger")
    try:
        assert resolve_shift(Selection, {"version": "v1", "shift": "lumi_up"}) == "nominal"
    finally:
        config.remove_option("pylaw", "shift_sources")
    with pytest.raises(ShiftError):
        Selection(version="v1", shift="lumi_up")


def test_config_key_raises_no_unconsumed_warning(tmp_path):
    (tmp_path / "luigi.cfg").write_text("[pylaw]\nshift_sources = lumi\n")
    env = cli_env(tmp_path, PYTHONWARNINGS="always")
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), "Evaluation", "--module",
                             "tests.test_shift", "--version", "v1", "--shift", "lumi_up", "--print-status", "0"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("> Evaluation(shift=nominal)"), result.stdout
    assert "not consumed" not in result.stderr and "UnconsumedParameterWarning" not in result.stderr


def test_req_shifts_with_an_explicit_list():
    inference = Inference(version="v1")
    picked = pylaw.req_shifts(inference, Evaluation, shifts=["nominal", "jes_up", "btag_up"])
    assert [task.shift for task in picked.values()] == ["nominal", "jes_up", "nominal"]


class Chicken(Recorded):
    def requires(self):
        return self.req(Egg)


class Egg(Recorded):
    shifts = {"jes_up"}

    def requires(self):
        return self.req(Chicken)


def test_a_requirement_cycle_is_a_clear_error():
    with pytest.raises(ShiftError, match="its requirements form a cycle"):
        Chicken(version="v1", shift="jes_up")


# -- upstream as an explicit override --------------------------------------------------

class Declared(Recorded):
    upstream = (Reconstruction,)

    def requires(self):
        return self.req(Reconstruction)


class Hidden(Recorded):
    """Declares no upstream class: what its requirement implements stays invisible."""

    upstream = ()

    def requires(self):
        return [Reconstruction(version=self.version, shift=self.shift)]


def test_upstream_overrides_the_requirement_walk():
    assert Declared(version="v1", shift="jes_up").shift == "jes_up"
    assert Declared(version="v1", shift="pdf_up") is Declared(version="v1")
    assert Hidden(version="v1", shift="jes_up") is Hidden(version="v1")


def test_undeclared_shifted_requirement_is_an_error_only_with_upstream():
    class Sloppy(Recorded):
        upstream = ()

        def requires(self):
            return self.req(Reconstruction)

    with pytest.raises(ShiftError, match=r"does not list it in Sloppy\.upstream"):
        Sloppy(version="v1").requires()

    class Relaxed(Recorded):
        def requires(self):
            return self.req(Reconstruction)

    assert Relaxed(version="v1", shift="jer_up").requires().shift == "jer_up"


# -- a shift passes through ShiftTasks only ------------------------------------------

class PlainMiddle(pylaw.Task):
    def requires(self):
        return self.req(Reconstruction)

    def output(self):
        return self.local_target("plain.json")


class AbovePlain(Recorded):
    def requires(self):
        return self.req(PlainMiddle)


def test_a_plain_task_stops_the_shift():
    assert PlainMiddle(version="v1").requires().shift == "nominal", "a plain task has no shift to pass on"
    assert AbovePlain(version="v1", shift="jes_up") is AbovePlain(version="v1")


# -- diamonds and shifts implemented on two branches of the graph --------------------

class Base(Recorded):
    pass


class Left(Recorded):
    shifts = {"btag_up", "btag_down"}

    def requires(self):
        return self.req(Base)


class Right(Recorded):
    shifts = {"btag_up", "btag_down", "jes_up"}

    def requires(self):
        return self.req(Base)


class Top(Recorded):
    def requires(self):
        return {"left": self.req(Left), "right": self.req(Right)}


def test_diamond_shares_the_common_ancestor():
    assert build(Top(version="v1"), Top(version="v1", shift="btag_up"), Top(version="v1", shift="jes_up"))
    assert RAN[("Base", "nominal")] == 1 and len([k for k in RAN if k[0] == "Base"]) == 1
    assert RAN[("Left", "btag_up")] == 1 and RAN[("Right", "btag_up")] == 1
    assert RAN[("Left", "nominal")] == 1, "Left does not see jes: its jes_up is the nominal instance"
    assert RAN[("Right", "jes_up")] == 1 and RAN[("Top", "jes_up")] == 1
    assert Top(version="v1", shift="jes_up").requires()["left"] is Left(version="v1")


# -- workflows ---------------------------------------------------------------------------

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


class Calibration(Recorded):
    shifts = {"jes_up", "jes_down"}


class Skim(Recorded, pylaw.LocalWorkflow):
    """Sees jes only through what its branches require (workflow_requires() is empty)."""

    def create_branch_map(self):
        return ["a", "b", "c"]

    def requires(self):
        return self.req(Calibration)

    def output(self):
        return self.local_target(f"skim_{self.branch_data}.json")


class Histograms(Recorded):
    shifts = {"pdf_up", "pdf_down"}

    def requires(self):
        return self.req(Skim)


class Combination(pylaw.Task):
    def requires(self):
        return pylaw.req_shifts(self, Histograms)

    def output(self):
        return self.local_target("combined.json")

    def run(self):
        RAN[("Combination", "all")] += 1
        self.output().dump(sorted(self.input()))


def test_workflow_chain_runs_each_branch_once_per_shift_it_sees(isolated):
    assert build(Combination(version="v1"), workers=1)
    expected = {
        ("Calibration", "nominal"): 1, ("Calibration", "jes_up"): 1, ("Calibration", "jes_down"): 1,
        ("Skim", "nominal"): 3, ("Skim", "jes_up"): 3, ("Skim", "jes_down"): 3,
        **{("Histograms", s): 1 for s in ("nominal", "jes_up", "jes_down", "pdf_up", "pdf_down")},
        ("Combination", "all"): 1}
    assert dict(RAN) == expected
    stored = sorted(p.name for p in (isolated / "Skim" / "v1").iterdir())
    assert stored == ["shift=jes_down", "shift=jes_up", "shift=nominal"]


class CalibratedByWorkflow(Recorded, pylaw.LocalWorkflow):
    """Sees jes only through workflow_requires(); its branches require nothing."""

    def create_branch_map(self):
        return [0, 1]

    def workflow_requires(self):
        return self.req(Calibration)

    def output(self):
        return self.local_target(f"wf_{self.branch}.json")


class ListedLater(Recorded, pylaw.LocalWorkflow):
    """A branch map read from a file that does not exist yet (as an upstream output would be)."""

    def create_branch_map(self):
        with open(os.path.join(self.local_path(), "listing.txt")) as listing:
            return listing.read().split()

    def workflow_requires(self):
        return self.req(Calibration)

    def requires(self):
        return self.req(Left)


class PilotCalibrated(Recorded, pylaw.SlurmWorkflow):
    """On Slurm with --pilot its proxy requires nothing: the shift must not depend on that."""

    def create_branch_map(self):
        return [0, 1]

    def workflow_requires(self):
        return self.req(Calibration)

    def output(self):
        return self.local_target(f"pilot_{self.branch}.json")


def test_backend_and_pilot_do_not_change_the_shift():
    pilot = PilotCalibrated(version="agree", shift="jes_up", workflow="slurm", pilot=True)
    assert pilot.requires() == [], "the proxy of a pilot workflow requires nothing"
    assert pilot.shift == "jes_up"
    assert PilotCalibrated(version="agree", shift="jes_up", branch=1).shift == "jes_up"
    assert PilotCalibrated(version="agree", shift="pdf_up", workflow="slurm", pilot=True).shift == "nominal"


@pytest.mark.parametrize("cls", [Skim, CalibratedByWorkflow, ShiftedSelection])
def test_branch_and_workflow_agree_on_the_shift(cls):
    for shift in known_shifts():
        workflow = cls(version="agree", shift=shift)
        for branch in workflow.branch_numbers():
            assert cls(version="agree", shift=shift, branch=branch).shift == workflow.shift, (shift, branch)
            assert workflow.as_branch(branch).shift == workflow.shift
        assert cls(version="agree", shift=shift, branches="1").shift == workflow.shift
    assert cls(version="agree", shift="jes_up").shift == "jes_up"
    assert cls(version="agree", shift="pdf_up").shift == "nominal"


def test_missing_branch_map_falls_back_to_workflow_requires(isolated):
    assert ListedLater(version="v1", shift="jes_up").shift == "jes_up", "seen through workflow_requires()"
    assert ListedLater(version="v1", shift="btag_up") is ListedLater(version="v1"), "branches unknown: not seen yet"
    with pytest.raises(FileNotFoundError):
        ListedLater(version="v1").get_branch_map()


# -- the command line ----------------------------------------------------------------

def shift_table(tmp_path, *args):
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pylaw"), "shifts", "tests.test_shift", *args],
                            cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_shift_table_cli(tmp_path):
    stdout = shift_table(tmp_path, "Inference")
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines()[2:]}
    assert stdout.split()[:5] == ["shift", "Selection", "Reconstruction", "Evaluation", "Inference"]
    assert rows["nominal"] == ["nominal", "nominal", "nominal", "combines"]
    assert rows["jes_up"] == ["nominal", "implements", "inherits", "combines"]
    assert rows["q2_down"] == ["nominal", "nominal", "implements", "combines"]


def test_shift_table_of_a_workflow_chain(tmp_path):
    stdout = shift_table(tmp_path, "Combination", "--version", "v2")
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines()[2:]}
    assert stdout.split()[:5] == ["shift", "Calibration", "Skim", "Histograms", "Combination"]
    assert rows["jes_down"] == ["implements", "inherits", "inherits", "combines"]
    assert rows["pdf_up"] == ["nominal", "nominal", "implements", "combines"]
    assert rows["btag_up"] == ["nominal", "nominal", "nominal", "combines"]


def test_shift_table_names_a_missing_parameter(tmp_path):
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pylaw"), "shifts", "tests.test_shift",
                             "Evaluation", "--shift", "nope_sideways"],
                            cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 2 and "malformed shift 'nope_sideways'" in result.stderr


def test_print_status_shows_effective_shift(tmp_path):
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), "Evaluation", "--module",
                             "tests.test_shift", "--version", "v1", "--shift", "pdf_up", "--print-status", "-1"],
                            cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("> Evaluation(shift=pdf_up): missing")
    assert any(line.strip().startswith("> Reconstruction(shift=nominal)") for line in lines)
