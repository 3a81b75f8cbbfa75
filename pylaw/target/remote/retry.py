"""The retry policy: how often, how long apart and how long each try may take.

Only :class:`~pylaw.errors.TransientRemoteError` is retried; every other error is an
answer (the file is missing, access is denied) that retrying would only delay.
"""

from __future__ import annotations

import dataclasses
import random

from pylaw.errors import StorageConfigError


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Attempts, exponential back-off with jitter, and a timeout per attempt.

    ``attempts`` counts every try (1 = no retry). Before try ``n`` (n ≥ 2) the caller
    sleeps ``delay * 2**(n-2)`` seconds, capped at ``max_delay`` and scaled by a random
    factor in ``[1 - jitter, 1 + jitter]`` so that many jobs hitting one storage element
    at once do not retry in lockstep. ``timeout`` bounds one attempt of one operation
    (seconds; None leaves the backend's default).
    """

    attempts: int = 4
    delay: float = 0.5
    max_delay: float = 10.0
    jitter: float = 0.5
    timeout: float | None = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise StorageConfigError(f"a retry policy needs at least 1 attempt, got {self.attempts}")
        if not 0.0 <= self.jitter <= 1.0:
            raise StorageConfigError(f"retry jitter is a fraction in [0, 1], got {self.jitter}")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before try number ``attempt`` (2, 3, ...); 0 before the first."""
        if attempt <= 1:
            return 0.0
        base = min(self.max_delay, self.delay * 2 ** (attempt - 2))
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * factor)
