"""GBNF literals: each option matches exactly itself."""

from __future__ import annotations

import pytest

from agent.llm.grammar import choice_grammar, gbnf_literal


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("take red apple", '"take red apple"'),
        ("", '""'),
        ("put café in frigo", '"put café in frigo"'),  # non-ASCII stays literal
        ('say "hi"', '"say \\"hi\\""'),
        ("a\\b", '"a\\\\b"'),
        ("line\nnext\ttab\r", '"line\\nnext\\ttab\\r"'),
        ("bell\x07 del\x7f", '"bell\\x07 del\\x7f"'),
    ],
)
def test_a_literal_quotes_the_text_and_escapes_what_gbnf_reads_specially(
    text: str, literal: str
) -> None:
    assert gbnf_literal(text) == literal


def test_a_choice_grammar_lists_each_option_once_in_order() -> None:
    grammar = choice_grammar(["go north", 'say "x"', "go north"])
    assert grammar == 'root ::= "go north" | "say \\"x\\""'
    with pytest.raises(ValueError):
        choice_grammar([])
