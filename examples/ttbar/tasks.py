"""A toy ttH analysis on generated events: the chain of pylaw's design documents.

GenerateEvents (workflow: dataset x chunk) -> Selection (workflow, same branches) ->
Reconstruction -> Evaluation (histograms) -> Inference (signal-strength fit) -> Plot.

Run it with ``examples/ttbar/run.sh`` or ``pyl Plot --version v1 --local``.
"""

from __future__ import annotations

import luigi
import numpy as np

import pylaw

#: dataset -> (kind, expected events per chunk); data is drawn from the sum of the others
DATASETS = {
    "data": ("data", 0),
    "tth": ("signal", 300),
    "ttbar": ("background", 6000),
    "dy": ("background", 3000),
}
SIMULATED = [name for name, (kind, _) in DATASETS.items() if kind != "data"]
MASS_BINS = np.linspace(50.0, 250.0, 41)


def simulate(dataset: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Events of one simulated process: a mass-like observable, a jet pT, a jet count."""
    if dataset == "tth":
        mass = rng.normal(125.0, 12.0, n)
    elif dataset == "dy":
        mass = rng.normal(91.0, 9.0, n)
    else:
        mass = 50.0 + rng.exponential(60.0, n)
    jet_pt = 20.0 + rng.exponential(40.0 if dataset == "ttbar" else 30.0, n)
    n_jets = rng.poisson(5.0 if dataset in ("tth", "ttbar") else 2.5, n)
    return {"mass": mass, "jet_pt": jet_pt, "n_jets": n_jets}


class AnalysisTask(pylaw.Task):
    """Common parameters of the toy analysis."""

    n_chunks = luigi.IntParameter(default=4, description="files (chunks) per dataset")
    seed = luigi.IntParameter(default=42, description="random seed of the generation")


class GenerateEvents(AnalysisTask, pylaw.LocalWorkflow):
    """One branch per dataset and chunk; data chunks are pseudo-data from all processes."""

    def create_branch_map(self):
        return [(dataset, chunk) for dataset in DATASETS for chunk in range(self.n_chunks)]

    def output(self):
        dataset, chunk = self.branch_data
        return self.local_target(f"events_{dataset}_{chunk}.npz")

    def run(self):
        dataset, _ = self.branch_data
        rng = np.random.default_rng([self.seed, self.branch])
        if dataset == "data":
            parts = [simulate(name, rng.poisson(DATASETS[name][1]), rng) for name in SIMULATED]
            events = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        else:
            events = simulate(dataset, DATASETS[dataset][1] * 4, rng)
            events["weight"] = np.full(len(events["mass"]), 0.25)
        if "weight" not in events:
            events["weight"] = np.ones(len(events["mass"]))
        self.output().dump(events)


class Selection(AnalysisTask, pylaw.LocalWorkflow):
    """Keeps events with at least three jets and a hard leading jet, chunk by chunk."""

    min_jets = luigi.IntParameter(default=3)
    min_jet_pt = luigi.FloatParameter(default=30.0)

    def create_branch_map(self):
        return self.req(GenerateEvents, branch=-1).get_branch_map()

    def workflow_requires(self):
        return self.req(GenerateEvents)

    def requires(self):
        return self.req(GenerateEvents)

    def output(self):
        dataset, chunk = self.branch_data
        return self.local_target(f"selected_{dataset}_{chunk}.npz")

    def run(self):
        events = self.input().load()
        keep = (events["n_jets"] >= self.min_jets) & (events["jet_pt"] > self.min_jet_pt)
        self.output().dump({key: values[keep] for key, values in events.items()})


class Reconstruction(AnalysisTask):
    """Merges the selected chunks of each dataset and reconstructs the mass."""

    def requires(self):
        return self.req(Selection)

    def output(self):
        return {dataset: self.local_target(f"reco_{dataset}.npz") for dataset in DATASETS}

    def run(self):
        collection = self.input()
        branch_map = self.requires().get_branch_map()
        for dataset, target in self.output().items():
            chunks = [collection[b].load() for b, (name, _) in branch_map.items() if name == dataset]
            merged = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
            merged["mass_reco"] = merged["mass"] * self.jet_energy_scale()
            target.dump(merged)

    def jet_energy_scale(self) -> float:
        return 1.0


class Evaluation(AnalysisTask):
    """Histograms of the reconstructed mass per dataset, as JSON."""

    def requires(self):
        return self.req(Reconstruction)

    def output(self):
        return self.local_target("histograms.json")

    def run(self):
        histograms = {}
        for dataset, target in self.input().items():
            events = target.load()
            counts, _ = np.histogram(events["mass_reco"], MASS_BINS, weights=events["weight"])
            sumw2, _ = np.histogram(events["mass_reco"], MASS_BINS, weights=events["weight"] ** 2)
            histograms[dataset] = {"counts": counts.tolist(), "sumw2": sumw2.tolist()}
        self.output().dump({"bins": MASS_BINS.tolist(), "histograms": histograms})


def fit_signal_strength(data, signal, background, grid=None) -> dict:
    """Binned Poisson likelihood scan of the signal strength mu: best fit and 95% CL upper limit."""
    grid = np.linspace(0.0, 5.0, 501) if grid is None else grid
    data, signal, background = map(np.asarray, (data, signal, background))
    expected = np.clip(grid[:, None] * signal[None, :] + background[None, :], 1e-9, None)
    nll = (expected - data[None, :] * np.log(expected)).sum(axis=1)
    q = 2.0 * (nll - nll.min())
    best = int(np.argmin(q))
    above = np.nonzero((q > 3.84) & (np.arange(len(grid)) > best))[0]
    inside = np.nonzero(q <= 1.0)[0]
    return {
        "mu_best": float(grid[best]),
        "mu_68_interval": [float(grid[inside[0]]), float(grid[inside[-1]])],
        "mu_upper_limit_95": float(grid[above[0]]) if len(above) else None,
        "q_scan": {"mu": grid[::25].tolist(), "q": q[::25].tolist()},
    }


class Inference(AnalysisTask):
    """Fits the signal strength to the data histogram."""

    def requires(self):
        return self.req(Evaluation)

    def output(self):
        return self.local_target("inference.json")

    def run(self):
        hists = self.input().load()["histograms"]
        background = np.sum([hists[name]["counts"] for name in SIMULATED if name != "tth"], axis=0)
        self.output().dump(fit_signal_strength(hists["data"]["counts"], hists["tth"]["counts"], background))


class Plot(AnalysisTask):
    """Data, stacked backgrounds and the signal, with the fit result."""

    def requires(self):
        return {"hists": self.req(Evaluation), "fit": self.req(Inference)}

    def output(self):
        return self.local_target("mass.png")

    def run(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        payload = self.input()["hists"].load()
        fit = self.input()["fit"].load()
        bins, hists = np.array(payload["bins"]), payload["histograms"]
        centers = 0.5 * (bins[1:] + bins[:-1])
        fig, ax = plt.subplots(figsize=(7, 5))
        backgrounds = [name for name in SIMULATED if name != "tth"]
        ax.hist([centers] * len(backgrounds), bins, weights=[hists[b]["counts"] for b in backgrounds],
                stacked=True, label=backgrounds, histtype="stepfilled", alpha=0.7)
        stacked = np.sum([hists[b]["counts"] for b in backgrounds], axis=0)
        ax.step(bins, np.append(stacked + np.array(hists["tth"]["counts"]), 0), where="post",
                color="red", label="ttH (on top)")
        data = np.array(hists["data"]["counts"])
        ax.errorbar(centers, data, yerr=np.sqrt(data), fmt="ko", markersize=3, label="data")
        ax.set_xlabel("reconstructed mass [GeV]")
        ax.set_ylabel("events / bin")
        ax.set_title(f"mu = {fit['mu_best']:.2f}, 95% CL limit {fit['mu_upper_limit_95']}")
        ax.legend()
        self.output().dump(fig, dpi=100)
        plt.close(fig)
