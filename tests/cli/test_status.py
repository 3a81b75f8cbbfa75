"""``pylaw status`` and ``pylaw graph`` through the real commands: text, terminal, JSON schema, the example's graph."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import PYTHON, ROOT, cli_env
from tests.test_cli import TASKS

PYLAW = os.path.join(os.path.dirname(PYTHON), "pylaw")
SCHEMA = json.loads(Path(ROOT, "docs", "_static", "status-schema.json").read_text())
EXAMPLE_CFG = os.path.join(ROOT, "examples", "ttbar", "luigi.cfg")
ESCAPE = "\x1b["


@pytest.fixture
def project(tmp_path):
    """Produce (5 branches: 0-2 made, 3 failed in the last run) and Combine (missing)."""
    (tmp_path / "mytasks.py").write_text(TASKS)
    (tmp_path / "luigi.cfg").write_text("[pylaw]\nmodules = mytasks\n[core]\nlog_level = WARNING\n")
    made = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), "Produce", "--version", "v1",
                           "--branches", "0-2"], cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    return tmp_path


def pylaw(project, *args, env=None, **kwargs):
    return subprocess.run([PYLAW, *args], cwd=project, env=env or cli_env(project), capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_plain_text_on_a_pipe(project):
    result = pylaw(project, "status", "mytasks", "Combine", "--version", "v1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ESCAPE not in out and "\r" not in out, "no colours or redrawing in a pipe"
    lines = out.splitlines()
    assert lines[0].startswith("2 task(s): 1 missing, 1 partial")
    assert lines[1] == "Combine(n=5)  missing"
    assert lines[2] == "└── Produce(n=5)  partial 3/5"
    assert "5 branches (local): 3 done, 0 running, 0 failed, 2 pending" in lines[3]
    assert lines[4].strip() == "missing branches: 3-4"


def test_json_follows_the_documented_schema(project):
    result = pylaw(project, "status", "mytasks", "Combine", "--version", "v1", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    root, produce = document["tasks"]
    assert document["root"] == root["id"] and root["family"] == "Combine" and root["requires"] == [produce["id"]]
    assert produce["workflow"]["branches"] == {"total": 5, "done": 3, "running": 0, "failed": 0, "pending": 2}
    assert produce["workflow"]["missing"] == "3-4" and produce["state"] == "partial"
    assert document["tree"] == [{"depth": 0, "id": root["id"], "repeated": False},
                                {"depth": 1, "id": produce["id"], "repeated": False}]


def test_colours_and_a_bar_on_a_terminal(project):
    master, slave = pty.openpty()
    process = subprocess.Popen([PYLAW, "status", "mytasks", "Combine", "--version", "v1"], cwd=project,
                               env=cli_env(project), stdout=slave, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        ready = select.select([master], [], [], 30)[0]
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:
            chunk = b""
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert process.wait(30) == 0
    text = screen.decode()
    assert "\x1b[33mpartial 3/5\x1b[0m" in text, text  # yellow
    assert re.search(r"\x1b\[32m█+\x1b\[0m\x1b\[2m░+\x1b\[0m", text), text  # the bar: done, then pending


def build_example(tmp_path):
    """The example with GenerateEvents complete and Selection half made."""
    env = cli_env(tmp_path, LUIGI_CONFIG_PATH=EXAMPLE_CFG)
    for task, branches in (("GenerateEvents", "0-15"), ("Selection", "0-7")):
        made = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), task, "--version", "v1",
                               "--branches", branches, "--local"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert made.returncode == 0, made.stderr
    return env


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    crc = struct.unpack(">I", data[29:33])[0]
    assert zlib.crc32(data[12:29]) == crc, "corrupt IHDR chunk"
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def test_the_example_graph_as_dot_svg_and_png(tmp_path):
    env = build_example(tmp_path)
    args = ["examples.ttbar.tasks", "Plot", "--version", "v1"]
    document = json.loads(pylaw(ROOT, "status", *args, "--json", env=env).stdout)
    tasks = {t["id"]: t for t in document["tasks"]}
    assert len(tasks) == 18  # Plot, Inference, 9 Evaluation, 5 Reconstruction, Selection, GenerateEvents
    edges = {(r, t["id"]) for t in tasks.values() for r in t["requires"]}

    dot = pylaw(ROOT, "graph", *args, env=env)
    assert dot.returncode == 0, dot.stderr
    nodes = dict(re.findall(r'^  "([^"]+)" \[label=.*fillcolor="(#\w+)"', dot.stdout, re.M))
    assert set(nodes) == set(tasks)
    assert set(re.findall(r'^  "([^"]+)" -> "([^"]+)";', dot.stdout, re.M)) == edges
    by_family = {tasks[i]["family"]: colour for i, colour in nodes.items()}
    assert by_family["GenerateEvents"] == "#9fdf9f" and by_family["Selection"] == "#ffe08a"  # complete, partial
    assert by_family["Plot"] == "#eeeeee"  # missing
    assert "local: 8/16 done, 8 pending" in dot.stdout  # the workflow collapsed to one node, with its counts

    svg_path, png_path = tmp_path / "graph.svg", tmp_path / "graph.png"
    for path in (svg_path, png_path):
        made = pylaw(ROOT, "graph", *args, "--output", str(path), env=env)
        assert made.returncode == 0, made.stderr
    tree = ET.parse(svg_path)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    groups = tree.getroot().iterfind(".//svg:g", ns)
    titles = {"node": set(), "edge": set()}
    for group in groups:
        if group.get("class") in titles:
            titles[group.get("class")].add(group.find("svg:title", ns).text)
    assert titles["node"] == set(tasks)
    assert titles["edge"] == {f"{a}->{b}" for a, b in edges}
    width, height = png_size(png_path.read_bytes())
    assert 600 < width < 5000 and 300 < height < 3000, (width, height)
    assert not [p for p in os.listdir(tmp_path) if ".pylaw-tmp" in p], "no temporary file left behind"
