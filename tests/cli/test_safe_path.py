"""``PYTHONSAFEPATH``: a module planted in the working directory cannot shadow an installed one."""

import os
import subprocess

from tests.conftest import PYTHON, cli_env

TASKS = '''
import luigi
import pylaw


class UsesColorsys(pylaw.Task):
    def output(self):
        return self.local_target("rows.txt")

    def run(self):
        import colorsys  # the standard library's, not the working directory's
        self.output().dump(colorsys.__file__)
'''

PLANTED = '''
open("planted-module-ran", "w").close()
'''


def run_in_planted_dir(tmp_path, **env):
    code = tmp_path / "code"
    work = tmp_path / "work"
    code.mkdir()
    work.mkdir()
    (code / "safetasks.py").write_text(TASKS)
    (work / "colorsys.py").write_text(PLANTED)
    environment = cli_env(tmp_path, **env)
    # no empty entry: Python reads one as the working directory
    entries = [str(code), *environment["PYTHONPATH"].split(os.pathsep)]
    environment["PYTHONPATH"] = os.pathsep.join(e for e in entries if e)
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), "--module", "safetasks", "UsesColorsys",
                             "--version", "v1"], cwd=work, env=environment, capture_output=True, text=True,
                            timeout=120)
    return result, (work / "planted-module-ran").exists()


def test_safe_path_keeps_the_working_directory_behind_installed_modules(tmp_path):
    result, planted_ran = run_in_planted_dir(tmp_path, PYTHONSAFEPATH="1")
    assert result.returncode == 0, result.stderr
    assert not planted_ran


def test_without_safe_path_the_working_directory_comes_first_as_with_python_m(tmp_path):
    _, planted_ran = run_in_planted_dir(tmp_path)
    assert planted_ran  # the documented default; shows the test above can fail
