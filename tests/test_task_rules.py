"""Task text at its defaults (a case found by ``make mutation``)."""

from __future__ import annotations

from jointtask_lib.tasks import TaskConfig, example_tokens


def test_example_tokens_default_is_the_reduction_chain_of_thought():
    dom = TaskConfig(ops=("ADD", "MAX"), modulus=5).domain()
    expr = ("ADD", (1, ("MAX", (2, 4))))
    # written out by hand: innermost first, one '=' per reduction step, then 'e'
    assert " ".join(example_tokens(expr, dom)) == "( ADD 1 ( MAX 2 4 ) ) = ( ADD 1 4 ) = 0 e"
    assert " ".join(example_tokens(expr, dom, "none")) == "( ADD 1 ( MAX 2 4 ) ) = 0 e"
