"""A toy ttH analysis on generated events: the chain of pylaw's design documents.

GenerateEvents (workflow: dataset x chunk) -> Selection (workflow, same branches) ->
Reconstruction -> Evaluation (histograms) -> Inference (signal-strength fit) -> Plot.

Systematic shifts follow "implement as late as possible": Reconstruction implements the
jet energy scale and resolution (JES, JER), Evaluation the PDF and scale (Q2) weights;
Selection implements none, so every shift reuses its nominal output. Inference combines
all nine variations of Evaluation into a profile-likelihood fit.

Run it with ``examples/ttbar/run.sh`` or ``pyl Plot --version v1 --local``;
``pylaw shifts examples.ttbar.tasks Inference`` prints the shift table.
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
SOURCES = ("jes", "jer", "pdf", "q2")  # the nuisance parameters of the fit (fit in stats.py)


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


class GenerateEvents(AnalysisTask, pylaw.LocalWorkflow, pylaw.HTCondorWorkflow):
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


class Selection(AnalysisTask, pylaw.ShiftTask, pylaw.LocalWorkflow, pylaw.HTCondorWorkflow):
    """Keeps events with at least three jets and a hard leading jet, chunk by chunk."""

    shifts = frozenset()  # no variation changes the selection: shared by all shifts

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


class Reconstruction(AnalysisTask, pylaw.ShiftTask):
    """Merges the selected chunks of each dataset and reconstructs the mass (JES, JER here)."""

    shifts = frozenset({"jes_up", "jes_down", "jer_up", "jer_down"})

    #: jet energy scale factor and relative resolution per shift (simulation only)
    JES = {"jes_up": 1.03, "jes_down": 0.97}
    JER = {"jer_up": 0.08, "jer_down": 0.02}

    def requires(self):
        return self.req(Selection)

    def output(self):
        return {dataset: self.local_target(f"reco_{dataset}.npz") for dataset in DATASETS}

    def run(self):
        collection = self.input()
        branch_map = self.requires().get_branch_map()
        for index, (dataset, target) in enumerate(self.output().items()):
            chunks = [collection[b].load() for b, (name, _) in branch_map.items() if name == dataset]
            merged = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
            merged["mass_reco"] = self.reconstruct(merged["mass"], simulated=dataset != "data", seed=index)
            target.dump(merged)

    def reconstruct(self, mass: np.ndarray, simulated: bool, seed: int) -> np.ndarray:
        """Detector smearing (5 %); the shifts change scale and resolution of simulation only."""
        rng = np.random.default_rng([self.seed, seed])  # same smearing numbers for every shift
        scale = self.JES.get(self.shift, 1.0) if simulated else 1.0
        resolution = self.JER.get(self.shift, 0.05) if simulated else 0.05
        return mass * scale * (1.0 + resolution * rng.standard_normal(len(mass)))


class Evaluation(AnalysisTask, pylaw.ShiftTask):
    """Histograms of the reconstructed mass per dataset, as JSON (PDF, Q2 weights here)."""

    shifts = frozenset({"pdf_up", "pdf_down", "q2_up", "q2_down"})

    def requires(self):
        return self.req(Reconstruction)

    def output(self):
        return self.local_target("histograms.json")

    def run(self):
        histograms = {}
        for dataset, target in self.input().items():
            events = target.load()
            weights = events["weight"] * self.theory_weight(dataset, events["mass_reco"])
            counts, _ = np.histogram(events["mass_reco"], MASS_BINS, weights=weights)
            sumw2, _ = np.histogram(events["mass_reco"], MASS_BINS, weights=weights**2)
            histograms[dataset] = {"counts": counts.tolist(), "sumw2": sumw2.tolist()}
        self.output().dump({"bins": MASS_BINS.tolist(), "shift": self.shift, "histograms": histograms})

    def theory_weight(self, dataset: str, mass: np.ndarray) -> np.ndarray:
        """PDF: signal normalisation +-6 %; Q2: ttbar normalisation +-8 % with a slope in mass."""
        sign = 1.0 if self.shift.endswith("_up") else -1.0
        if self.shift.startswith("pdf") and dataset == "tth":
            return np.full(len(mass), 1.0 + 0.06 * sign)
        if self.shift.startswith("q2") and dataset == "ttbar":
            return 1.0 + sign * (0.08 + 0.0004 * (mass - 100.0))
        return np.ones(len(mass))


def template_shifts(hists: dict, process: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per source: (up - nominal, nominal - down) of one process's histogram."""
    nominal = np.asarray(hists["nominal"][process]["counts"])
    return {source: (np.asarray(hists[f"{source}_up"][process]["counts"]) - nominal,
                     nominal - np.asarray(hists[f"{source}_down"][process]["counts"]))
            for source in SOURCES}


class Inference(AnalysisTask):
    """Fits the signal strength with every systematic variation of the histograms."""

    def requires(self):
        return pylaw.req_shifts(self, Evaluation)  # nominal and all 8 shifts, shared where possible

    def output(self):
        return self.local_target("inference.json")

    def run(self):
        from examples.ttbar.stats import fit_signal_strength  # scipy: only where the fit runs

        hists = {shift: target.load()["histograms"] for shift, target in self.input().items()}
        backgrounds = [name for name in SIMULATED if name != "tth"]
        nominal = hists["nominal"]
        background = np.sum([nominal[b]["counts"] for b in backgrounds], axis=0)
        signal_shifts = template_shifts(hists, "tth")
        per_background = [template_shifts(hists, b) for b in backgrounds]
        background_shifts = {s: tuple(np.sum([p[s][i] for p in per_background], axis=0) for i in (0, 1))
                             for s in SOURCES}
        result = fit_signal_strength(nominal["data"]["counts"], nominal["tth"]["counts"], background,
                                     signal_shifts, background_shifts)
        result["stat_only"] = fit_signal_strength(nominal["data"]["counts"], nominal["tth"]["counts"],
                                                  background)
        self.output().dump(result)


class Plot(AnalysisTask):
    """Data over the stacked prediction (signal on top), the uncertainty band, a data/MC ratio
    panel and the fit result (figure.py)."""

    def requires(self):
        return {"hists": pylaw.req_shifts(self, Evaluation), "fit": self.req(Inference)}

    def output(self):
        return self.local_target("mass.png")

    def run(self):
        from examples.ttbar.figure import mass_figure  # matplotlib: not on every `pyl` start

        hists = {shift: target.load() for shift, target in self.input()["hists"].items()}
        self.output().dump(mass_figure(hists, self.input()["fit"].load()), dpi=100)
