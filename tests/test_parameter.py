import luigi
import pytest

import pylaw
from pylaw.errors import ParameterValueError, PylawError
from pylaw.parameter import Ranges


class Params(pylaw.Task):
    items = pylaw.CSVParameter(inner=luigi.IntParameter(), default=())
    groups = pylaw.MultiCSVParameter(default=())
    ranges = pylaw.RangeParameter()
    timeout = pylaw.DurationParameter(default=60)
    size = pylaw.BytesParameter(default=0)


def make(**kwargs):
    return Params(version="v1", **kwargs)


def parse(name, text):
    return Params.get_param_values(Params.get_params(), [], {"version": "v", name: text})


def test_csv_parses_typed_items():
    assert Params.items.parse("1, 2,3") == (1, 2, 3)
    assert Params.items.serialize((4, 5)) == "4,5"
    assert Params.items.parse("") == ()


def test_csv_unique_sort_and_bounds():
    param = pylaw.CSVParameter(unique=True, sort=True, max_len=3)
    assert param.parse("b,a,b") == ("a", "b")
    with pytest.raises(ParameterValueError, match="at most 3"):
        param.parse("a,b,c,d")


def test_csv_bad_item_names_the_parameter():
    with pytest.raises(ParameterValueError, match="--items"):
        Params.items.parse("1,x")


def test_multi_csv_groups():
    assert Params.groups.parse("a,b:c") == (("a", "b"), ("c",))
    assert Params.groups.serialize((("a", "b"), ("c",))) == "a,b:c"


def test_ranges_parse_select_and_roundtrip():
    ranges = Params.ranges.parse("0-3,7,10-")
    assert ranges.select(range(15)) == [0, 1, 2, 3, 7, 10, 11, 12, 13, 14]
    assert 12 in ranges and 5 not in ranges
    assert str(ranges) == "0-3,7,10-"
    assert list(Params.ranges.parse("2-4")) == [2, 3, 4]


@pytest.mark.parametrize("text", ["a", "3-1", "-2", "1--2", "1.5"])
def test_bad_ranges_are_clear_errors(text):
    with pytest.raises(ParameterValueError, match="--ranges"):
        Params.ranges.parse(text)


def test_ranges_hashable_in_instance_cache():
    assert make(ranges="0-2") is make(ranges=Ranges(((0, 2),)))


@pytest.mark.parametrize("text,seconds", [("1h30m", 5400), ("90", 90), ("2d", 172800), ("1.5m", 90),
                                          ("1w", 604800)])
def test_durations(text, seconds):
    assert Params.timeout.parse(text) == seconds


def test_duration_serialize_roundtrip():
    assert Params.timeout.serialize(5430) == "1h30m30s"
    assert Params.timeout.parse(Params.timeout.serialize(5430)) == 5430


@pytest.mark.parametrize("text", ["abc", "1h30x", "-5", "h", "inf", "nan", "-inf", "1e400"])
def test_bad_durations(text):
    with pytest.raises(ParameterValueError, match="--timeout"):
        Params.timeout.parse(text)


@pytest.mark.parametrize("text,size", [("2GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("10k", 10000),
                                       ("123", 123), ("1.5 kib", 1536)])
def test_bytes(text, size):
    assert Params.size.parse(text) == size


@pytest.mark.parametrize("text", ["2XB", "GB", "-1", "1e3"])
def test_bad_bytes(text):
    with pytest.raises(ParameterValueError, match="--size") as info:
        Params.size.parse(text)
    assert isinstance(info.value, (ValueError, PylawError))


def test_bad_value_from_command_line_is_clear(tmp_path):
    from luigi.cmdline_parser import CmdlineParser

    with pytest.raises(ParameterValueError, match="--size"), \
            CmdlineParser.global_instance(["Params", "--version", "v", "--size", "lots"]) as cp:
        cp.get_task_obj()
