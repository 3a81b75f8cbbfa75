"""pylaw.Task behaves as a Luigi task where Luigi's users rely on it (see also tests/luigi_compat)."""

import datetime

import luigi
import luigi.util
import pytest
from luigi.task_register import Register

import pylaw
from pylaw.workflow.remote import BaseRemoteWorkflow
from pylaw.workflow.slurm import SlurmWorkflow


class Daily(pylaw.Task):
    date = luigi.DateParameter()


class WithDefault(pylaw.Task):
    dataset = luigi.Parameter(default="tth")
    extra = luigi.IntParameter(default=1)


class LocalWf(pylaw.Task, pylaw.LocalWorkflow):
    sample = luigi.Parameter()

    def create_branch_map(self):
        return {0: "a", 1: "b"}


class RemoteWf(pylaw.Task, SlurmWorkflow):
    sample = luigi.Parameter()

    def create_branch_map(self):
        return {0: "a"}


class Shifted(pylaw.ShiftTask):
    sample = luigi.Parameter()


class Narrow(pylaw.Task):
    """A Luigi idiom: an own __init__ that reads the caller's positional arguments."""

    name = luigi.Parameter()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.first_arg = args[0] if args else None


class Keywords(pylaw.Task):
    name = luigi.Parameter(default="x")

    def __init__(self, name="x", **kwargs):  # a narrower signature than Luigi's *args, **kwargs
        super().__init__(name=name, **kwargs)
        self.seen = (name, sorted(kwargs))


def test_user_parameters_are_positional():
    task = Daily(datetime.date(2024, 5, 1), version="v1")
    assert task.date == datetime.date(2024, 5, 1)
    a, b = WithDefault("ttbar", 2, version="v1"), WithDefault("zz", version="v1")
    assert (a.dataset, a.extra, b.dataset, b.extra) == ("ttbar", 2, "zz", 1)
    assert len({a.task_id, b.task_id, WithDefault(version="v1").task_id}) == 3
    assert LocalWf("s1", version="v1").sample == "s1"
    assert Shifted("s1", version="v1").sample == "s1"


@pytest.mark.parametrize("mixin", [pylaw.Task, pylaw.ShiftTask, pylaw.BaseWorkflow, BaseRemoteWorkflow, SlurmWorkflow])
def test_framework_parameters_are_not_positional(mixin):
    """Guards new framework parameters too: declare them positional=False."""
    params = [(name, value) for klass in mixin.__mro__ for name, value in vars(klass).items()
              if isinstance(value, luigi.Parameter) and klass.__module__.startswith("pylaw.")]
    assert params
    assert [name for name, param in params if param.positional] == []


def test_display_names_show_user_parameters_version_and_identity_only():
    # the visualiser's display name is built from the public parameters
    assert set(WithDefault("ttbar", version="v1").to_str_params(only_public=True)) == {"dataset", "extra", "version"}
    remote = RemoteWf("s", version="v1").to_str_params(only_public=True)
    assert set(remote) == {"sample", "version", "branch", "branches"}
    # hidden parameters still reach the scheduler
    assert "workflow" in WithDefault(version="v1").to_str_params()


def test_execution_summary_shows_the_user_parameters():
    result = luigi.build([WithDefault("ttbar", 2, version="v1")], local_scheduler=True, detailed_summary=True,
                         log_level="ERROR")
    assert "WithDefault(version=v1, dataset=ttbar, extra=2)" in result.summary_text, result.summary_text
    assert "WithDefault(...)" not in result.summary_text


def test_interactive_actions_are_no_task_parameters():
    names = {name for name, _ in WithDefault.get_params()}
    assert not names & {"print_deps", "print_status", "print_output", "remove_output", "fetch_output", "fetch_dir",
                        "yes"}


def test_init_receives_the_callers_arguments():
    task = Narrow("n1", version="v1")
    assert task.first_arg == "n1" and task.name == "n1"
    kw = Keywords(version="v1")
    assert kw.seen == ("x", ["version"])
    assert Keywords("y", version="v1").seen == ("y", ["version"])
    assert Narrow("n1", version="v1") is task  # still Luigi's instance cache


def test_pylaw_task_does_not_take_luigis_registry_name():
    assert Register.get_task_cls("Task") is luigi.Task
    assert Register.get_task_cls("WithDefault") is WithDefault
    assert "Task" in Register.task_names() and "WithDefault" in Register.task_names()


def test_parameters_attached_later_are_seen():
    class Parent(pylaw.Task):
        colour = luigi.Parameter(default="red")

    class Late(pylaw.Task):
        pass

    class LateChild(Late):
        pass

    assert "colour" not in dict(Late.get_params()) and "colour" not in dict(LateChild.get_params())
    luigi.util.inherits(Parent)(Late)  # setattr of Parent's parameter on the class
    assert Late(version="v1").colour == "red" and LateChild(version="v1", colour="blue").colour == "blue"
    del Late.colour
    assert "colour" not in dict(LateChild.get_params())


def test_instance_cache_controls_act_on_pylaw_classes():
    first = WithDefault(version="v1")
    assert WithDefault(version="v1") is first
    WithDefault.clear_instance_cache()
    second = WithDefault(version="v1")
    assert second is not first
    try:
        WithDefault.disable_instance_cache()
        assert WithDefault(version="v1") is not WithDefault(version="v1")
        assert LocalWf("s", version="v1").as_branch(0) is not LocalWf("s", version="v1").as_branch(0)
    finally:
        Register.clear_instance_cache()  # re-enables it
    assert WithDefault(version="v1") is WithDefault(version="v1")
