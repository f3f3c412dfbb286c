"""permutator.reference fails clearly without an official checkout (the equivalence
itself is covered by the golden fixtures; see make_golden.py)."""
import pytest

from permutator.reference import build_official


def test_missing_checkout_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="houqb/VisionPermutator"):
        build_official("vip_s7", str(tmp_path))


def test_unknown_variant_is_a_clear_error(tmp_path):
    with pytest.raises(KeyError, match="vip_s7"):
        build_official("vip_xl", str(tmp_path))
