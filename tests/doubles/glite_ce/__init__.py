"""A TEST DOUBLE of the CREAM CE command line (``glite-ce-*``): no CREAM CE can run here.

``bin/`` holds executables named like the real CLI's; :func:`tests.doubles.glite_ce.fixture.cream_double`
puts them first on PATH. They run jobs as local processes, keep their state in a directory
(``CREAM_DOUBLE_STATE``), and print what the real CLI prints (``tests/job/data/glite/``),
with job ids of their own (``https://<host>:<port>/DOUBLE_<hex>``), so code that assumes
real CREAM ids (``CREAM<digits>``) fails here. Like a CE, they refuse a missing or expired
proxy and a submission naming a delegation they do not know.
"""
