"""The mass plot of the toy analysis: data over the stacked prediction, a data/MC ratio
panel, and the fit result. Built on a bare matplotlib Figure (no pyplot state, no backend
to choose), so tests can inspect it without writing a file."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from examples.ttbar.stats import decimals, format_measurement

#: legend names of the datasets, as a physicist writes them
LABELS = {"data": "Data", "tth": r"$t\bar{t}H$", "ttbar": r"$t\bar{t}$", "dy": r"$Z/\gamma^{*}$+jets"}
COLORS = {"tth": "#e42536", "ttbar": "#5790fc", "dy": "#f89c20"}
STACK = ("ttbar", "dy", "tth")  # bottom to top: the signal on top, where it shows


def events_label(bins: np.ndarray) -> str:
    """The y label for uniform bins, with the width read from the binning ("Events / 5 GeV")."""
    widths = np.diff(bins)
    if not np.allclose(widths, widths[0]):
        raise ValueError(f"events_label() needs uniform bins, got widths {widths.tolist()}: "
                         "divide the counts by the bin width and label 'Events / GeV' instead")
    return f"Events / {widths[0]:g} GeV"


def fit_summary(fit: dict) -> str:
    """Two title lines: the 68 % CL interval, then the significance or the 95 % CL upper limit."""
    low, high = fit["mu_68_interval"]
    first = rf"$\hat{{\mu}} = {format_measurement(fit['mu_best'], low, high)}$ (68 % CL: $\Delta(-2\ln L) = 1$)"
    significance = rf"significance ${fit['significance']:.1f}\,\sigma$ ($\sqrt{{\Delta(-2\ln L)}}$ at $\mu = 0$)"
    if fit["quoted"] == "significance":
        return f"{first}\n{significance}"
    n = decimals(fit["mu_best"] - low, high - fit["mu_best"])  # the interval's decimals
    return f"{first}\n" + rf"$\mu < {fit['mu_upper_limit_95']:.{n}f}$ (95 % CL upper limit), {significance}"


def envelope(hists: dict, total: np.ndarray, source: str, processes: list[str]) -> np.ndarray:
    """Largest deviation of the summed prediction under a source's up/down shifts."""
    shifted = [sum(np.array(hists[f"{source}_{d}"]["histograms"][name]["counts"]) for name in processes)
               for d in ("up", "down")]
    return np.maximum(abs(shifted[0] - total), abs(shifted[1] - total))


def mass_figure(hists: dict, fit: dict) -> Figure:
    """The figure from Evaluation's outputs (shift -> histograms JSON) and Inference's result."""
    nominal = hists["nominal"]["histograms"]
    bins = np.asarray(hists["nominal"]["bins"], dtype=float)
    counts = {name: np.asarray(h["counts"], dtype=float) for name, h in nominal.items()}
    total = sum(counts[name] for name in STACK)
    stat = np.sqrt(sum(np.asarray(nominal[name]["sumw2"], dtype=float) for name in STACK))
    sources = sorted({shift.rsplit("_", 1)[0] for shift in hists if shift != "nominal"})
    syst = np.sqrt(sum(envelope(hists, total, source, list(STACK)) ** 2 for source in sources))
    band = np.hypot(stat, syst)
    data = counts["data"]
    centers = 0.5 * (bins[1:] + bins[:-1])

    fig = Figure(figsize=(7, 7))
    # fixed margins: constrained layout measures every text and doubled the plotting time
    main, ratio = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.06})
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.91)
    main.hist([centers] * len(STACK), bins, weights=[counts[name] for name in STACK], stacked=True,
              histtype="stepfilled", color=[COLORS[name] for name in STACK], label=[LABELS[n] for n in STACK])
    main.stairs(total + band, bins, baseline=total - band, fill=True, facecolor="none", hatch="////",
                edgecolor="gray", linewidth=0, label=r"MC stat. $\oplus$ syst. unc.")
    main.errorbar(centers, data, yerr=np.sqrt(data), fmt="ko", markersize=3, label=LABELS["data"])
    main.set_ylabel(events_label(bins))
    main.set_ylim(0, 1.35 * max(data.max(), (total + band).max()))
    main.set_title(fit_summary(fit), fontsize=10)
    main.text(0.03, 0.95, r"Toy data, pre-fit prediction ($\mu = 1$)", transform=main.transAxes, va="top")
    handles, labels = main.get_legend_handles_labels()
    order = [labels.index(LABELS[name]) for name in ("data", *reversed(STACK))]
    order.append(labels.index(r"MC stat. $\oplus$ syst. unc."))
    main.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper right")

    safe = np.where(total > 0, total, np.nan)  # empty prediction: no ratio rather than infinity
    ratio.stairs(1 + band / safe, bins, baseline=1 - band / safe, fill=True, facecolor="none", hatch="////",
                 edgecolor="gray", linewidth=0, label=r"MC stat. $\oplus$ syst. unc.")
    ratio.stairs(1 + stat / safe, bins, baseline=1 - stat / safe, fill=True, color="lightgray",
                 label="MC stat. unc.")
    ratio.axhline(1.0, color="black", linewidth=0.8)
    ratio.errorbar(centers, data / safe, yerr=np.sqrt(data) / safe, fmt="ko", markersize=3)
    ratio.set_ylim(0.6, 1.4)
    ratio.set_ylabel("Data / MC")
    ratio.set_xlabel(r"$m_{\mathrm{reco}}$ [GeV]")
    ratio.set_xlim(bins[0], bins[-1])
    ratio.legend(loc="upper left", ncol=2, fontsize=8)
    return fig
