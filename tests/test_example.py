"""The example analysis end to end, through the real command line, and its physics as a
physicist reads it: the fit's scan, interval and significance, and the plot."""

import itertools
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from scipy.optimize import minimize

from tests.conftest import PYTHON, ROOT, cli_env

PARAMS = ("v1", "n_chunks=4", "seed=42")


def pyl(tmp_path, *args):
    env = cli_env(tmp_path, LUIGI_CONFIG_PATH=os.path.join(ROOT, "examples", "ttbar", "luigi.cfg"))
    return subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def mtimes(directory):
    return {p: os.stat(os.path.join(directory, p)).st_mtime_ns for p in os.listdir(directory)}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example run once for this module; tests that change the store work on a copy."""
    tmp_path = tmp_path_factory.mktemp("example")
    result = pyl(tmp_path, "Plot", "--version", "v1", "--local", "--workers", "2")
    assert result.returncode == 0, result.stderr
    return tmp_path / "store"


def test_example_runs_end_to_end_and_is_make_like(example, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(example, store)
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


# --- the physics, from the stored outputs -------------------------------------------------

def stored(store):
    """Inference's fit and Evaluation's histograms (shift -> JSON content) of the run."""
    fit = json.loads(store.joinpath("Inference", *PARAMS, "inference.json").read_text())
    hists = {}
    for path in store.joinpath("Evaluation", "v1").glob("shift=*/n_chunks=4/seed=42/histograms.json"):
        content = json.loads(path.read_text())
        hists[content["shift"]] = content
    assert len(hists) == 9
    return fit, hists


class IndependentLikelihood:
    """-ln L written from the model's description (Poisson bins, unit Gaussian nuisances,
    linear interpolation to the up/down templates), not from examples/ttbar/stats.py: the
    reference the stored fit is compared to. The nuisances are profiled by a bounded
    minimiser in each orthant of theta (the likelihood is smooth inside one, with kinks at
    theta = 0), the lowest minimum taken."""

    def __init__(self, hists, systematics=True):
        def counts(shift, names):
            return np.sum([hists[shift]["histograms"][name]["counts"] for name in names], axis=0).astype(float)

        self.data = np.array(hists["nominal"]["histograms"]["data"]["counts"], dtype=float)
        self.sources = sorted({s.rsplit("_", 1)[0] for s in hists if s != "nominal"}) if systematics else []
        # per component (signal, backgrounds): nominal, and per source up - nominal, down - nominal
        self.nominal, self.up, self.down = [], [], []
        for names in (["tth"], ["ttbar", "dy"]):
            nominal = counts("nominal", names)
            self.nominal.append(nominal)
            for shifted, direction in ((self.up, "up"), (self.down, "down")):
                rows = [counts(f"{s}_{direction}", names) - nominal for s in self.sources]
                shifted.append(np.array(rows).reshape(len(rows), len(nominal)))

    def nll_and_gradient(self, theta, mu, signs):
        """-ln L and its gradient in theta, inside the orthant of the given signs."""
        signs = np.asarray(signs)[:, None]
        slopes = [np.where(signs > 0, up, -down) for up, down in zip(self.up, self.down, strict=True)]
        dlam = mu * slopes[0] + slopes[1]  # source x bin
        lam = mu * self.nominal[0] + self.nominal[1] + theta @ dlam
        nll = (lam - self.data * np.log(lam)).sum() + 0.5 * theta @ theta
        return nll, dlam @ (1.0 - self.data / lam) + theta

    def profile(self, mu):
        if not self.sources:
            return self.nll_and_gradient(np.zeros(0), mu, np.zeros(0))[0]
        return min(minimize(self.nll_and_gradient, 0.1 * np.array(signs), args=(mu, signs), jac=True,
                            method="L-BFGS-B", bounds=[(0, None) if s > 0 else (None, 0) for s in signs],
                            options={"ftol": 1e-15, "gtol": 1e-8}).fun
                   for signs in itertools.product((1, -1), repeat=len(self.sources)))


@pytest.mark.parametrize("which", ["full", "stat_only"])
def test_scan_keeps_every_point_at_the_fit_resolution_with_its_minimum_at_the_best_fit(example, which):
    fit, _ = stored(example)
    fit = fit if which == "full" else fit["stat_only"]
    mu, q = np.array(fit["q_scan"]["mu"]), np.array(fit["q_scan"]["q"])
    grid = mu[mu != fit["mu_best"]]
    assert np.diff(grid).max() == pytest.approx(0.02), "every point of the fit's scan (step 0.02) is stored"
    from examples.ttbar.stats import MU_GRID

    assert grid.tolist() == MU_GRID.tolist() and len(mu) == len(MU_GRID) + 1
    assert np.all(np.diff(mu) > 0)
    # the minimum is the best fit, at exactly 0; no scan point lies below it beyond the
    # profiling's precision
    assert mu[np.argmin(q)] == fit["mu_best"] and q.min() == 0.0
    assert q[mu != fit["mu_best"]].min() > -1e-6
    assert MU_GRID[0] < fit["mu_best"] < MU_GRID[-1]


@pytest.mark.parametrize("which", ["full", "stat_only"])
def test_interval_crossings_are_interpolated_and_the_significance_agrees_with_a_direct_solve(example, which):
    from scipy.optimize import brentq

    fit, hists = stored(example)
    fit = fit if which == "full" else fit["stat_only"]
    reference = IndependentLikelihood(hists, systematics=which == "full")
    # the stored best fit is the minimum (to 1e-4), so -ln L there is the minimum (to ~1e-7)
    best = fit["mu_best"]
    nll_min = reference.profile(best)
    assert reference.profile(best - 1e-4) > nll_min < reference.profile(best + 1e-4)

    def q(mu):
        return 2.0 * (reference.profile(mu) - nll_min)

    step = 0.02  # the scan's grid: 0, 0.02, ..., 3
    low, high = fit["mu_68_interval"]
    assert low < best < high
    for stored_root in (low, high):
        # brentq raises if the true crossing is not within a grid step of the stored one
        root = brentq(lambda m, r=stored_root: q(m) - 1.0, stored_root - step, stored_root + step, xtol=1e-7)
        assert abs(stored_root - root) < 1e-5, (stored_root, root)
        assert abs(root / step - round(root / step)) * step > 1e-3, "the true crossing lies between grid points"
    assert fit["interval_cl"] == 0.68
    assert fit["significance"] == pytest.approx(np.sqrt(q(0.0)), rel=1e-5)


@pytest.mark.parametrize("which", ["full", "stat_only"])
def test_significance_is_quoted_for_the_observed_signal_and_agrees_with_the_scan(example, which):
    fit, _ = stored(example)
    fit = fit if which == "full" else fit["stat_only"]
    q_scan = dict(zip(fit["q_scan"]["mu"], fit["q_scan"]["q"], strict=True))
    assert fit["significance"] ** 2 == pytest.approx(q_scan[0.0], rel=1e-12)
    assert fit["significance"] ** 2 == pytest.approx(fit["q_at_mu_0"], rel=1e-12)
    assert fit["significance"] > 5.0, "the toy data contains the signal at mu = 1"
    assert fit["quoted"] == "significance" and fit["mu_upper_limit_95"] is None


def test_stat_only_significance_exceeds_the_one_with_systematics(example):
    fit, _ = stored(example)
    assert fit["stat_only"]["significance"] > fit["significance"]


def test_a_small_signal_gets_an_upper_limit_instead_of_a_significance():
    from examples.ttbar.stats import MU_GRID, Q_95_ONE_SIDED, fit_signal_strength

    rng = np.random.default_rng(7)
    background = np.full(20, 400.0)
    signal = 40.0 * np.exp(-0.5 * ((np.arange(20) - 10) / 2.0) ** 2)
    data = rng.poisson(background + 0.2 * signal)
    fit = fit_signal_strength(data, signal, background)
    assert fit["significance"] < 3.0 and fit["quoted"] == "upper_limit_95"
    limit = fit["mu_upper_limit_95"]
    assert limit > fit["mu_68_interval"][1] > fit["mu_best"]
    # the limit is the one-sided crossing of q = 2.71, between grid points
    mu, q = np.array(fit["q_scan"]["mu"]), np.array(fit["q_scan"]["q"])
    assert np.interp(limit, mu, q) == pytest.approx(Q_95_ONE_SIDED, abs=0.02)
    assert min(abs(limit - MU_GRID)) > 1e-6
    assert pytest.approx(2.706, abs=1e-3) == Q_95_ONE_SIDED


def test_measurement_format_gives_value_and_errors_the_same_decimals():
    from examples.ttbar.stats import format_measurement

    assert format_measurement(0.907, 0.7856, 1.0357) == "0.91^{+0.13}_{-0.12}"
    assert format_measurement(1.234, 1.2, 1.3) == "1.234^{+0.066}_{-0.034}"
    assert format_measurement(12.0, 9.0, 17.0) == "12.0^{+5.0}_{-3.0}"


def figure_from(example):
    from examples.ttbar.figure import mass_figure

    fit, hists = stored(example)
    return mass_figure(hists, fit), fit, hists


def test_plot_has_a_ratio_panel_units_and_physics_labels(example):
    fig, fit, hists = figure_from(example)
    assert len(fig.axes) == 2, "main panel and data/MC ratio panel"
    main, ratio = sorted(fig.axes, key=lambda ax: -ax.get_position().y0)
    assert main.get_position().height > 2 * ratio.get_position().height
    assert main.get_shared_x_axes().joined(main, ratio)
    assert main.get_ylabel() == "Events / 5 GeV"
    assert ratio.get_ylabel() == "Data / MC" and ratio.get_xlabel() == r"$m_{\mathrm{reco}}$ [GeV]"
    legend = [text.get_text() for text in main.get_legend().get_texts()]
    assert legend == ["Data", r"$t\bar{t}H$", r"$Z/\gamma^{*}$+jets", r"$t\bar{t}$", r"MC stat. $\oplus$ syst. unc."]
    assert "MC stat. unc." in [text.get_text() for text in ratio.get_legend().get_texts()]

    # the ratio's points are data over the full prediction, signal included
    nominal = hists["nominal"]["histograms"]
    data = np.array(nominal["data"]["counts"], dtype=float)
    total = np.sum([nominal[name]["counts"] for name in ("tth", "ttbar", "dy")], axis=0)
    points = [line for line in ratio.get_lines() if line.get_marker() == "o"]
    assert len(points) == 1 and np.allclose(points[0].get_ydata(), data / total)

    # the signal is stacked on top of the backgrounds: the stack's top is the total prediction
    stack_top = max((patch for patch in main.patches if patch.get_label() == r"$t\bar{t}H$"),
                    key=lambda patch: patch.get_path().vertices[:, 1].max())
    assert stack_top.get_path().vertices[:, 1].max() == pytest.approx(total.max())

    title = main.get_title()
    assert r"\hat{\mu}" in title and "68 % CL" in title and r"\Delta(-2\ln L) = 1" in title
    assert f"{fit['significance']:.1f}" in title and r"\sigma" in title and "95 %" not in title
    assert "mu =" not in title.replace(r"\mu =", "")


def test_plot_title_numbers_share_their_decimals(example):
    import re

    fig, _, _ = figure_from(example)
    first_line = fig.axes[0].get_title().splitlines()[0]
    numbers = re.findall(r"\d+\.(\d+)", first_line.split("(68")[0])
    assert len(numbers) == 3 and len({len(n) for n in numbers}) == 1, first_line


def test_plot_y_label_follows_the_binning(example):
    from examples.ttbar.figure import events_label, mass_figure

    fit, hists = stored(example)
    merged = {}
    for shift, content in hists.items():  # rebin by two: 10 GeV bins
        merged[shift] = {"bins": content["bins"][::2], "histograms": {
            name: {key: np.add.reduceat(h[key], range(0, len(h[key]), 2)).tolist() for key in ("counts", "sumw2")}
            for name, h in content["histograms"].items()}}
    assert mass_figure(merged, fit).axes[0].get_ylabel() == "Events / 10 GeV"
    assert events_label(np.array([0.0, 2.5, 5.0])) == "Events / 2.5 GeV"
    with pytest.raises(ValueError, match="uniform bins"):
        events_label(np.array([0.0, 5.0, 20.0]))


def test_profile_finds_the_global_minimum_behind_a_concave_kink():
    from examples.ttbar.stats import ProfileLikelihood

    # two background shifts whose kinks at theta = 0 trap minimisers started there (Powell,
    # L-BFGS-B and Nelder-Mead all end 0.06 above the global minimum)
    shifts = {"a": (np.array([-7.0, -4, -5, -13, 0, -11]), np.array([-9.0, 0, 2, -6, 1, 9])),
              "b": (np.array([11.0, 7, -3, 10, -2, -3]), np.array([8.0, 3, 4, -7, -2, 3]))}
    data, background = np.array([105.0, 106, 82, 122, 108, 92]), np.full(6, 100.0)
    likelihood = ProfileLikelihood(data, np.zeros(6), background, {k: (0 * u, 0 * d) for k, (u, d) in shifts.items()},
                                   shifts)
    value, theta = likelihood.profile(1.0)
    local = [minimize(lambda t: likelihood.nll(1.0, t), np.zeros(2), method=method).fun
             for method in ("Powell", "L-BFGS-B", "Nelder-Mead")]
    assert min(local) > value + 0.05
    axis = np.linspace(-4.0, 4.0, 161)
    brute = min(likelihood.nll(1.0, np.array([a, b])) for a in axis for b in axis)
    assert brute - 0.01 < value <= brute + 1e-12
    assert value == pytest.approx(likelihood.nll(1.0, theta), abs=1e-12)
