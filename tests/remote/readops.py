"""Random read operations on a file object, recorded: a stream and a plain copy must record the same."""

from __future__ import annotations

import random
from typing import IO, Any

OPERATIONS = ("read", "seek0", "seek1", "seek2", "readline", "readall")


def random_read_answers(f: IO[bytes], length: int, block: int, seed: int = 7, count: int = 300) -> list[Any]:
    """What ``count`` random reads, seeks (from start, current, end), readlines and tells of ``f`` return.

    The operations depend only on ``seed``, ``length`` and ``block``, not on the answers,
    so two file objects with the same bytes get the same sequence.
    """
    rng = random.Random(seed)
    answers: list[Any] = []
    position = 0  # tracked from the operations themselves, to keep relative seeks non-negative
    for _ in range(count):
        op = rng.choice(OPERATIONS)
        if op == "read":
            answers.append(f.read(rng.choice((0, 1, 17, block - 1, block, 2 * block + 5))))
        elif op.startswith("seek"):
            whence = int(op[-1])
            if whence == 0:
                offset = rng.randrange(0, length + 10)
            elif whence == 1:
                offset = max(rng.randrange(-block, block), -position)
            else:
                offset = -rng.randrange(0, length)
            answers.append(f.seek(offset, whence))
        elif op == "readline":
            answers.append(f.readline())
        elif rng.random() < 0.1:
            answers.append(f.read())
        position = f.tell()
        answers.append(position)
    return answers
