from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="pylaw",
    version="0.1.0",
    description="Make-like, distributed physics analyses on top of Luigi",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["pylaw", "pylaw.*"]),
    package_data={"pylaw": ["py.typed", "job/wrapper.sh"]},
    install_requires=["luigi>=3.5"],
    extras_require={
        "gfal": ["gfal2-python"],
        "htcondor": ["htcondor"],
        # luigid's task history ([scheduler] record_task_history): Luigi's DbTaskHistory needs SQLAlchemy 1.x
        "history": ["sqlalchemy<2"],
        "plot": ["matplotlib"],
        "test": ["pytest", "pytest-timeout", "numpy", "scipy", "matplotlib", "pyyaml", "ruff", "mypy", "wsgidav",
                 "cheroot",
                 "htcondor",  # client bindings (htcondor2) for the real test pool, tests/services/htcondor.py
                 "sqlalchemy<2",  # luigid's task history in tests/workflow/test_branch_claims.py
                 # Luigi's own test suite (tests/luigi_compat) imports these
                 "mock", "psutil", "hypothesis", "jsonschema"],
        "docs": ["sphinx"],
    },
    entry_points={"console_scripts": ["pylaw = pylaw.cli.entry:entry_main", "pyl = pylaw.cli.entry:entry_pyl"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: BSD License",
        "Topic :: Scientific/Engineering :: Physics",
    ],
)
