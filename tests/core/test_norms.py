import pytest

from rna_core.norms import NormSpec, parse_norms


def test_parse_basic_and_keys():
    specs = parse_norms("bn+in,gn:8 bgn@2 ln/na")
    assert [s.name for s in specs] == ["bn", "in", "gn:8", "bgn@2", "ln/na"]
    assert [s.key for s in specs] == ["bn", "in", "gn8", "bgns2", "ln_na"]
    assert not specs[-1].affine and specs[0].affine


def test_ranges_expand_to_powers_of_two():
    assert [s.group_size for s in parse_norms("gn@1-64")] == [1, 2, 4, 8, 16, 32, 64]
    assert [s.groups for s in parse_norms("bgn:2-8")] == [2, 4, 8]


@pytest.mark.parametrize("bad", ["bx", "gn", "gn:0", "in:4", "gn@3-5", "gn@8-2", ""])
def test_bad_specs_are_named(bad):
    with pytest.raises(ValueError):
        parse_norms(bad)


def test_duplicates_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        parse_norms("bn,bn")


@pytest.mark.parametrize("spec, channels, groups", [
    ("bn", 16, 16), ("in", 16, 16), ("ln", 16, 1), ("gn:4", 16, 4), ("gn@4", 16, 4), ("gn@64", 16, 1),
    ("bgn@1", 8, 8), ("bgn:32", 16, 16),
])
def test_num_groups(spec, channels, groups):
    assert parse_norms(spec)[0].num_groups(channels) == groups


def test_group_count_must_divide():
    with pytest.raises(ValueError, match="do not divide"):
        NormSpec("gn", groups=3).num_groups(16)
