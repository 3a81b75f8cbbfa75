"""The signal-strength fit of the toy analysis: a binned profile likelihood and its scan.

The test statistic is q(mu) = -2 ln(L(mu, profiled theta) / L(best fit)). Asymptotically
(Wilks), q = 1 bounds the 68 % CL interval, q = 2.71 the one-sided 95 % CL upper limit,
and sqrt(q(0)) is the significance of the signal over the background-only hypothesis.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.optimize import brentq, minimize

#: the scan of mu: every point is fitted and stored (resolution 0.02)
MU_GRID = np.linspace(0.0, 3.0, 151)
Q_68 = 1.0  # Delta(-2 ln L) of the 68 % CL interval (two-sided, one parameter)
Q_95_ONE_SIDED = 1.6448536269514722**2  # one-sided 95 % CL upper limit: Phi^-1(0.95) squared
#: below this significance an upper limit is quoted, at or above it the significance
OBSERVED_SIGMA = 3.0

Shifts = dict[str, tuple[np.ndarray, np.ndarray]]  # source -> (up - nominal, nominal - down)


class ProfileLikelihood:
    """Binned Poisson likelihood of mu; each systematic source is a nuisance parameter theta
    with a unit Gaussian constraint, interpolating linearly between the down, nominal and up
    templates."""

    def __init__(self, data, signal, background, signal_shifts: Shifts | None = None,
                 background_shifts: Shifts | None = None) -> None:
        self.data = np.asarray(data, dtype=float)
        self.signal = np.asarray(signal, dtype=float)
        self.background = np.asarray(background, dtype=float)
        self.sources = sorted(signal_shifts or {})
        if set(background_shifts or {}) != set(self.sources):
            raise ValueError(f"signal and background shifts name different sources: {self.sources} and "
                             f"{sorted(background_shifts or {})}")
        # per source: the signal's and the background's bin shifts side by side, for theta = +1
        # (up) and theta = -1 (down); expected() is then two small matrix products
        def stacked(side: int) -> np.ndarray:
            rows = [np.concatenate([signal_shifts[s][side], background_shifts[s][side]]) for s in self.sources]
            return np.array(rows, dtype=float).reshape(len(self.sources), 2 * len(self.data))

        self._up, self._down = stacked(0), stacked(1)
        # sum(d log d - d), so nll() is the Poisson deviance / 2: close to 0 at a good fit, which
        # keeps the minimiser's relative tolerance meaningful (not relative to ~1e5)
        positive = self.data > 0
        self._offset = float((self.data[positive] * (np.log(self.data[positive]) - 1.0)).sum())

    def expected(self, mu: float, theta: np.ndarray) -> np.ndarray:
        """Expected events per bin: mu * signal + background, each shifted by theta."""
        theta = np.asarray(theta, dtype=float)
        shift = np.maximum(theta, 0.0) @ self._up + np.minimum(theta, 0.0) @ self._down
        n = len(self.data)
        return np.clip(mu * (self.signal + shift[:n]) + self.background + shift[n:], 1e-9, None)

    def nll(self, mu: float, theta: np.ndarray) -> float:
        """-ln L up to a constant (the same for every mu and theta)."""
        lam = self.expected(mu, theta)
        return float((lam - self.data * np.log(lam)).sum() + self._offset + 0.5 * np.dot(theta, theta))

    def profile(self, mu: float, start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Minimum of nll over the nuisance parameters at fixed mu, and where it is."""
        theta = np.zeros(len(self.sources)) if start is None else start
        if not self.sources:
            return self.nll(mu, theta), theta
        # Powell: the templates' linear interpolation has a kink at theta = 0, no gradient there
        result = minimize(lambda t: self.nll(mu, t), theta, method="Powell")
        return float(result.fun), result.x

    def best_fit(self, mu: float, theta: np.ndarray, bounds: tuple[float, float]) -> tuple[float, float]:
        """(mu, nll) at the global minimum, starting from (mu, theta), mu within bounds."""
        start = np.concatenate([[mu], theta])
        limits = [bounds] + [(None, None)] * len(theta)
        result = minimize(lambda p: self.nll(p[0], p[1:]), start, method="Powell", bounds=limits,
                          options={"xtol": 1e-8, "ftol": 1e-14})
        return float(result.x[0]), float(result.fun)


def crossing(mu: np.ndarray, q: np.ndarray, level: float, side: str) -> float | None:
    """Where q crosses level left or right of its minimum, on a cubic spline of the scan.

    None if the scan does not reach the level on that side (the interval ends at the
    scan's edge, e.g. the physical boundary mu = 0).
    """
    spline = CubicSpline(mu, q)
    best = int(np.argmin(q))
    above = np.nonzero(q > level)[0]
    if side == "left":
        outside = above[above < best]
        if not len(outside):
            return None
        low, high = mu[outside[-1]], mu[outside[-1] + 1]
    else:
        outside = above[above > best]
        if not len(outside):
            return None
        low, high = mu[outside[0] - 1], mu[outside[0]]
    return float(brentq(lambda x: spline(x) - level, low, high, xtol=1e-12))


def fit_signal_strength(data, signal, background, signal_shifts: Shifts | None = None,
                        background_shifts: Shifts | None = None, grid: np.ndarray | None = None) -> dict:
    """Profile-likelihood scan of the signal strength mu (see ProfileLikelihood).

    Returns the best fit, the 68 % CL interval (q = 1 crossings, interpolated between scan
    points), the significance sqrt(q(0)), the one-sided 95 % CL upper limit only if the
    significance is below OBSERVED_SIGMA, and the full scan including the best-fit point.
    """
    grid = MU_GRID if grid is None else np.asarray(grid, dtype=float)
    if len(grid) < 4 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"the mu grid must be increasing with at least 4 points, got {grid.tolist()}")
    likelihood = ProfileLikelihood(data, signal, background, signal_shifts, background_shifts)
    theta, profile, thetas = None, [], []
    for mu in grid:
        value, theta = likelihood.profile(mu, theta)  # warm start from the previous point
        profile.append(value)
        thetas.append(theta)
    nearest = int(np.argmin(profile))
    mu_best, nll_best = likelihood.best_fit(grid[nearest], thetas[nearest], (grid[0], grid[-1]))
    if nll_best > profile[nearest]:  # the joint fit did not improve on the grid: the grid point is the minimum
        mu_best, nll_best = float(grid[nearest]), profile[nearest]
    q = 2.0 * (np.array(profile) - nll_best)  # >= 0 up to the minimiser's precision
    at = int(np.searchsorted(grid, mu_best))
    if at < len(grid) and grid[at] == mu_best:
        scan_mu, scan_q = grid, q
    else:
        scan_mu, scan_q = np.insert(grid, at, mu_best), np.insert(q, at, 0.0)
    q0 = 2.0 * (likelihood.profile(0.0)[0] - nll_best) if mu_best > 0 else 0.0
    significance = math.sqrt(max(q0, 0.0))
    # the spline runs through the regular grid only: a best fit next to a grid point would
    # put two knots almost on top of each other and make the spline ring
    low, high = crossing(grid, q, Q_68, "left"), crossing(grid, q, Q_68, "right")
    observed = significance >= OBSERVED_SIGMA
    return {
        "mu_best": mu_best,
        "mu_68_interval": [float(grid[0]) if low is None else low, float(grid[-1]) if high is None else high],
        "interval_cl": 0.68,
        "q_at_mu_0": q0,
        "significance": significance,
        "quoted": "significance" if observed else "upper_limit_95",
        "mu_upper_limit_95": None if observed else crossing(grid, q, Q_95_ONE_SIDED, "right"),
        "nuisances": likelihood.sources,
        "q_scan": {"mu": scan_mu.tolist(), "q": scan_q.tolist()},
    }


def decimals(*errors: float) -> int:
    """Decimals that give the smallest error two significant digits (at least 0)."""
    smallest = min(abs(e) for e in errors)
    if smallest == 0 or not math.isfinite(smallest):
        return 2
    return max(0, 1 - math.floor(math.log10(smallest)))


def format_measurement(value: float, low: float, high: float) -> str:
    """value^{+up}_{-down} as mathtext, all with the same number of decimals."""
    down, up = value - low, high - value
    n = decimals(down, up)
    return f"{value:.{n}f}^{{+{up:.{n}f}}}_{{-{down:.{n}f}}}"
