"""The signal-strength fit of the toy analysis: a binned profile likelihood and its scan.

The test statistic is q(mu) = -2 ln(L(mu, profiled theta) / L(best fit)). Asymptotically
(Wilks), q = 1 bounds the 68 % CL interval, q = 2.71 the one-sided 95 % CL upper limit,
and sqrt(q(0)) is the significance of the signal over the background-only hypothesis.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq, minimize_scalar

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
        if not self.data.shape == self.signal.shape == self.background.shape or self.data.ndim != 1:
            raise ValueError(f"data, signal and background need the same bins, got shapes {self.data.shape}, "
                             f"{self.signal.shape} and {self.background.shape}")
        signal_shifts, background_shifts = signal_shifts or {}, background_shifts or {}
        self.sources = sorted(signal_shifts)
        if set(background_shifts) != set(self.sources):
            raise ValueError(f"signal and background shifts name different sources: {self.sources} and "
                             f"{sorted(background_shifts)}")

        # per source: the signal's and the background's bin shifts side by side, for theta = +1
        # (up) and theta = -1 (down); expected() is then two small matrix products
        def stacked(side: int) -> np.ndarray:
            rows = [np.concatenate([signal_shifts[s][side], background_shifts[s][side]]) for s in self.sources]
            return np.array(rows, dtype=float).reshape(len(self.sources), 2 * len(self.data))

        self._up, self._down = stacked(0), stacked(1)
        self._faces = np.array(list(itertools.product((1, 0, -1), repeat=len(self.sources))))  # see profile()
        # sum(d log d - d), so nll() is the Poisson deviance / 2: close to 0 at a good fit
        # instead of ~-1e5, which keeps the digits of small differences between values
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

    def profile(self, mu: float) -> tuple[float, np.ndarray]:
        """Global minimum of nll over the nuisance parameters at fixed mu, and where it is.

        The interpolation is linear on each side of theta_k = 0, so nll is smooth and convex
        inside every orthant of theta, but its kinks at 0 can be concave: a minimiser started
        at theta = 0 can stay on the wrong side of one (Powell did, by 0.1 in -ln L, for JES).
        The minimum lies inside one face of one orthant (each theta_k > 0, < 0 or = 0), where
        it is the unconstrained minimum of that face's smooth, convex function. Newton's method
        solves all 3^K faces at once; the lowest result that lies inside its own face is the
        global minimum. Fine for the example's few sources (81 faces for 4).
        """
        if not self.sources:
            return self.nll(mu, np.zeros(0)), np.zeros(0)
        faces, n = self._faces, len(self.data)
        free = faces != 0
        slopes = np.where(faces[:, :, None] > 0, self._up, self._down) * free[:, :, None]
        dlam = mu * slopes[:, :, :n] + slopes[:, :, n:]  # face, source, bin: d expected / d theta
        base = mu * self.signal + self.background
        theta = np.zeros(faces.shape)
        for _ in range(50):
            lam = np.clip(base + np.einsum("fk,fkb->fb", theta, dlam), 1e-9, None)
            gradient = np.einsum("fkb,fb->fk", dlam, 1.0 - self.data / lam) + theta
            hessian = np.einsum("fkb,fb,fjb->fkj", dlam, self.data / lam**2, dlam) + np.eye(len(self.sources))
            step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
            theta -= step
            if not np.any(np.abs(step) >= 1e-10):  # a diverged face (nan) does not keep the loop going
                break
        lam = np.clip(base + np.einsum("fk,fkb->fb", theta, dlam), 1e-9, None)
        values = (lam - self.data * np.log(lam)).sum(axis=1) + self._offset + 0.5 * (theta**2).sum(axis=1)
        converged = np.all(np.abs(step) < 1e-8, axis=1) & np.isfinite(values)
        inside = np.all((faces * theta > 0) | ~free, axis=1) & converged
        best = int(np.argmin(np.where(inside, values, np.inf)))  # theta = 0 (all fixed) is always inside
        return float(values[best]), theta[best]

    def best_fit(self, bounds: tuple[float, float]) -> tuple[float, float]:
        """(mu, nll) at the minimum of the profile within bounds (a bracket from the scan)."""
        result = minimize_scalar(lambda mu: self.profile(mu)[0], bounds=bounds, method="bounded",
                                 options={"xatol": 1e-10})
        return float(result.x), float(result.fun)


def crossing(mu: np.ndarray, q: np.ndarray, level: float, side: str, q_of: Callable[[float], float]) -> float | None:
    """Where q crosses level left or right of the scan's minimum: the bracketing scan points
    found on the grid, the crossing solved on q_of (the profile likelihood itself).

    None if the scan does not reach the level on that side (the interval ends at the
    scan's edge, e.g. the physical boundary mu = 0).
    """
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
    return float(brentq(lambda x: q_of(x) - level, low, high, xtol=1e-10))


def fit_signal_strength(data, signal, background, signal_shifts: Shifts | None = None,
                        background_shifts: Shifts | None = None, grid: np.ndarray | None = None) -> dict:
    """Profile-likelihood scan of the signal strength mu (see ProfileLikelihood).

    Returns the best fit, the 68 % CL interval (q = 1 crossings, solved between the scan
    points), the significance sqrt(q(0)), the one-sided 95 % CL upper limit only if the
    significance is below OBSERVED_SIGMA, and the full scan including the best-fit point.
    """
    grid = MU_GRID if grid is None else np.asarray(grid, dtype=float)
    if len(grid) < 3 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"the mu grid must be increasing with at least 3 points, got {grid.tolist()}")
    likelihood = ProfileLikelihood(data, signal, background, signal_shifts, background_shifts)
    profile = np.array([likelihood.profile(mu)[0] for mu in grid])
    nearest = int(np.argmin(profile))
    mu_best, nll_best = likelihood.best_fit((grid[max(nearest - 1, 0)], grid[min(nearest + 1, len(grid) - 1)]))
    if profile[nearest] <= nll_best:  # the minimum is on the grid (e.g. at the boundary mu = 0)
        mu_best, nll_best = float(grid[nearest]), float(profile[nearest])
    q = 2.0 * (profile - nll_best)

    def q_of(mu: float) -> float:
        return 2.0 * (likelihood.profile(mu)[0] - nll_best)

    at = int(np.searchsorted(grid, mu_best))
    on_grid = at < len(grid) and grid[at] == mu_best
    scan_mu = grid if on_grid else np.insert(grid, at, mu_best)
    scan_q = q if on_grid else np.insert(q, at, 0.0)
    q0 = q_of(0.0) if mu_best > 0 else 0.0
    significance = math.sqrt(max(q0, 0.0))
    low, high = crossing(grid, q, Q_68, "left", q_of), crossing(grid, q, Q_68, "right", q_of)
    observed = significance >= OBSERVED_SIGMA
    return {
        "mu_best": mu_best,
        "mu_68_interval": [float(grid[0]) if low is None else low, float(grid[-1]) if high is None else high],
        "interval_cl": 0.68,
        "q_at_mu_0": q0,
        "significance": significance,
        "quoted": "significance" if observed else "upper_limit_95",
        "mu_upper_limit_95": None if observed else crossing(grid, q, Q_95_ONE_SIDED, "right", q_of),
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
