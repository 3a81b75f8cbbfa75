"""The ``pylaw`` and ``pyl`` command lines (:mod:`pylaw.cli.main`)."""
