"""Scorecard rows, verdict rules and rendering."""

from types import SimpleNamespace as NS

import pytest

from jointtask_lib.cli import main as cli_main
from jointtask_lib.scorecard import (
    claim, load_claims, render_markdown, verdict_benefit, verdict_greater, verdict_no_benefit, write_claims,
)


def red(kind, value, lo=None, hi=None):
    return NS(kind=kind, value=value, lo=lo, hi=hi)


@pytest.mark.parametrize("r, expected", [
    (red("estimate", 3.0, 1.8, 5.0), "reproduced"),
    (red("estimate", 1.3, 0.8, 2.0), "inconclusive"),
    (red("estimate", 0.7, 0.5, 0.95), "not reproduced"),
    (red("above", 4.0), "reproduced"),      # factor > 4
    (red("below", 0.9), "not reproduced"),  # factor < 0.9
    (red("below", 3.0), "inconclusive"),    # factor < 3 says nothing either way
    (red("inconclusive", None), "inconclusive"),
    (None, "inconclusive"),
])
def test_verdict_benefit(r, expected):
    assert verdict_benefit(r) == expected


@pytest.mark.parametrize("r, expected", [
    (red("estimate", 1.0, 0.7, 1.3), "reproduced"),
    (red("estimate", 3.0, 2.0, 4.0), "not reproduced"),
    (red("estimate", 1.4, 0.9, 2.2), "inconclusive"),
    (red("below", 1.2), "reproduced"),
    (red("above", 2.0), "not reproduced"),
])
def test_verdict_no_benefit(r, expected):
    assert verdict_no_benefit(r) == expected


def test_verdict_greater():
    assert verdict_greater(0.9, (0.8, 1.0), 0.3, (0.2, 0.4)) == "reproduced"
    assert verdict_greater(0.3, (0.2, 0.4), 0.9, (0.8, 1.0)) == "not reproduced"
    assert verdict_greater(0.5, (0.3, 0.7), 0.4, (0.2, 0.6)) == "inconclusive"


def test_claims_round_trip_and_markdown(tmp_path):
    rows = [claim(id="A1", paper="A", claim="joint | lowers", paper_value="2-7x", ours="3.1x [1.9, 5.0]",
                  verdict="reproduced", preset="quick", notebook="03_joint_training", note="n=10"),
            claim(id="B1", paper="B", claim="mixed ≈ single", paper_value="yes", ours="no",
                  verdict="not reproduced", preset="quick", notebook="09_icl")]
    write_claims(tmp_path, "03_joint_training", rows[:1])
    write_claims(tmp_path, "09_icl", rows[1:])
    assert load_claims(tmp_path) == rows
    md = render_markdown(load_claims(tmp_path))
    assert "2 claims: 1 reproduced, 1 not reproduced, 0 inconclusive" in md
    assert "joint \\| lowers" in md and "## Paper B" in md and "- **A1**: n=10" in md
    assert cli_main(["report", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "SCORECARD.md").read_text() == md


def test_bad_verdict_rejected():
    with pytest.raises(ValueError, match="'verdict' must be one of reproduced, not reproduced, inconclusive"):
        claim(id="x", paper="A", claim="c", paper_value="v", ours="o", verdict="yes", preset="quick", notebook="n")
