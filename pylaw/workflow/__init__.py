"""Workflows: a branch map, and where the branches run (locally, or as batch jobs)."""
