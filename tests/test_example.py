"""The example analysis end to end, through the real command line."""

import json
import os
import subprocess

from tests.conftest import PYTHON, ROOT, cli_env


def pyl(tmp_path, *args):
    env = cli_env(tmp_path, LUIGI_CONFIG_PATH=os.path.join(ROOT, "examples", "ttbar", "luigi.cfg"))
    return subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def mtimes(directory):
    return {p: os.stat(os.path.join(directory, p)).st_mtime_ns for p in os.listdir(directory)}


def test_example_runs_end_to_end_and_is_make_like(tmp_path):
    result = pyl(tmp_path, "Plot", "--version", "v1", "--local", "--workers", "2")
    assert result.returncode == 0, result.stderr
    store = tmp_path / "store"
    plot = store / "Plot" / "v1" / "n_chunks=4" / "seed=42" / "mass.png"
    # the seed's shift table: what ran is what is in the store, one directory per effective shift
    ran = {task: sorted(p.name for p in (store / task / "v1").iterdir())
           for task in ("Selection", "Reconstruction", "Evaluation")}
    assert ran["Selection"] == ["shift=nominal"]
    assert ran["Reconstruction"] == ["shift=jer_down", "shift=jer_up", "shift=jes_down", "shift=jes_up",
                                     "shift=nominal"]
    assert len(ran["Evaluation"]) == 9
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fit = json.loads((store / "Inference" / "v1" / "n_chunks=4" / "seed=42" / "inference.json").read_text())
    low, high = fit["mu_68_interval"]
    assert low <= 1.0 <= high, "the toy data is generated with mu = 1"
    stat_low, stat_high = fit["stat_only"]["mu_68_interval"]
    assert high - low > stat_high - stat_low, "systematic shifts must widen the interval"

    generated = store / "GenerateEvents" / "v1" / "n_chunks=4" / "seed=42"
    selected = store / "Selection" / "v1" / "shift=nominal" / "n_chunks=4" / "seed=42" / "min_jets=3"
    selected = selected / "min_jet_pt=30.0"
    before_gen, before_sel = mtimes(generated), mtimes(selected)
    plot_mtime = plot.stat().st_mtime_ns
    assert len(before_gen) == 16 and len(before_sel) == 16

    again = pyl(tmp_path, "Plot", "--version", "v1")
    assert again.returncode == 0 and mtimes(generated) == before_gen and mtimes(selected) == before_sel
    assert plot.stat().st_mtime_ns == plot_mtime

    # drop one Selection branch and everything merged after it: only that branch is redone
    os.remove(selected / "selected_ttbar_2.npz")
    removed = pyl(tmp_path, "Plot", "--version", "v1", "--remove-output", "0", "--yes")
    assert removed.returncode == 0
    for task in ("Reconstruction", "Evaluation", "Inference"):
        for path in (store / task).rglob("*.*"):
            path.unlink()
    rerun = pyl(tmp_path, "Plot", "--version", "v1")
    assert rerun.returncode == 0, rerun.stderr
    after_sel = mtimes(selected)
    changed = {name for name in after_sel if after_sel[name] != before_sel.get(name)}
    assert changed == {"selected_ttbar_2.npz"}
    assert mtimes(generated) == before_gen
    assert plot.stat().st_mtime_ns != plot_mtime
