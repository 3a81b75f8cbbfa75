"""Batch jobs: the contracts (:mod:`pylaw.job.base`), the command seam, the job wrapper,
the submission state and poll loop shared by all backends, and one module per backend."""
