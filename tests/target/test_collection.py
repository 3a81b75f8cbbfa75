import os

import pytest

import pylaw


def make_files(directory, n, present):
    targets = [pylaw.LocalFileTarget(directory / f"f{i}.txt") for i in range(n)]
    for i in present:
        targets[i].touch()
    return targets


def test_exists_with_fraction_and_count_thresholds(tmp_path):
    targets = make_files(tmp_path, 10, range(7))
    collection = pylaw.TargetCollection(targets)
    assert collection.count() == 7 and len(collection) == 10
    assert not collection.exists()
    assert collection.exists(threshold=0.7) and not collection.exists(threshold=0.71)
    assert collection.exists(threshold=7) and not collection.exists(threshold=8)
    assert collection.missing() == [7, 8, 9]


def test_nested_elements_exist_only_when_complete(tmp_path):
    a, b = make_files(tmp_path, 2, [0])
    collection = pylaw.TargetCollection({"x": {"a": a, "b": b}, "y": [a]})
    assert collection.existence() == {"x": False, "y": True}


def test_collection_behaves_like_its_container(tmp_path):
    from luigi.task import flatten

    targets = make_files(tmp_path, 3, [])
    collection = pylaw.TargetCollection({5: targets[0], 7: targets[1], 9: targets[2]})
    assert list(collection) == targets and [t for t in collection] == targets
    assert list(collection.keys()) == [5, 7, 9] and list(collection.values()) == targets
    assert list(collection.items()) == list(zip([5, 7, 9], targets, strict=True))
    assert len(collection) == 3 and collection[7] is targets[1] and collection.targets[9] is targets[2]
    assert 7 in collection and 6 not in collection
    assert flatten(collection) == targets
    nested = pylaw.TargetCollection([{"a": targets[0]}, [targets[1], targets[2]]])
    assert flatten(nested) == targets


class Thresholded(pylaw.Task):
    """A plain task whose output is a collection that counts as done at 2 of 3 files."""

    def output(self):
        return pylaw.TargetCollection([self.local_target(f"f{i}.txt") for i in range(3)], threshold=2)


def test_task_complete_checks_a_collection_as_a_whole(monkeypatch):
    task = Thresholded(version="v1")
    files = list(task.output())
    assert not task.complete()
    files[0].touch()
    assert not task.complete()
    files[2].touch()
    assert task.complete(), "the threshold of 2 is met; Luigi's per-target rule would say no"
    calls = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: calls.append(p) or real_scandir(p))
    assert task.complete() and len(calls) == 1, "one listing for the directory, not a stat per file"


def test_task_without_outputs_is_never_complete():
    class Nothing(pylaw.Task):
        pass

    assert not Nothing(version="v1").complete()


def test_one_listing_per_directory(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    targets = make_files(tmp_path / "a", 50, range(50)) + make_files(tmp_path / "b", 50, range(10))
    calls = []
    real_scandir = os.scandir

    def counting_scandir(path):
        calls.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    monkeypatch.setattr(os.path, "exists", lambda p: pytest.fail(f"stat of {p}"))
    assert pylaw.TargetCollection(targets).count() == 60
    assert sorted(calls) == [str(tmp_path / "a"), str(tmp_path / "b")]


def test_missing_directory_means_missing_targets(tmp_path):
    targets = make_files(tmp_path / "nowhere", 3, [])
    assert pylaw.TargetCollection(targets).count() == 0


def test_temporary_files_do_not_count(tmp_path):
    target = pylaw.LocalFileTarget(tmp_path / "f.txt")
    writer = target.open("w")
    writer.write("half")
    assert pylaw.TargetCollection([target]).count() == 0
    writer.close()
    assert pylaw.TargetCollection([target]).count() == 1


def test_sibling_collection_checks_single_directory(tmp_path):
    targets = make_files(tmp_path, 4, [1, 2])
    siblings = pylaw.SiblingFileCollection(targets)
    assert siblings.count() == 2 and siblings.dir.path == str(tmp_path)
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="one directory"):
        pylaw.SiblingFileCollection(targets + make_files(tmp_path / "other", 1, []))


def test_remove_collection(tmp_path):
    collection = pylaw.TargetCollection(make_files(tmp_path, 5, range(3)))
    assert collection.remove() == 3 and collection.count() == 0


def test_invalid_threshold(tmp_path):
    with pytest.raises(ValueError, match="lie in"):
        pylaw.TargetCollection(make_files(tmp_path, 1, [])).exists(threshold=1.5)
