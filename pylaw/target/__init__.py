"""Targets: local files and directories, collections, formatters, and remote storage (:mod:`pylaw.target.remote`)."""
