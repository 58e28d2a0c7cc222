"""The README's output contracts are the head types' own ``outputs()``, as ``contracts_markdown`` writes them."""

import re
from pathlib import Path

from vitdeploy.heads.contracts import contracts_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_contracts_are_generated_from_the_head_types():
    text = README.read_text()
    section = re.search(r"<!-- head-contracts:start -->\n(.*?)<!-- head-contracts:end -->", text, re.S)
    assert section is not None, "README lost its head-contracts markers"
    assert section.group(1) == contracts_markdown(), (
        "README's output contracts are stale; paste vitdeploy.heads.contracts.contracts_markdown() between the markers")


def test_contracts_say_what_each_declaration_changes():
    text = contracts_markdown()
    assert "(cameras, queries, classes + 1) | class logits per query; the last class is 'no object'" in text
    assert "(cameras, queries, classes) | class logits per query, one sigmoid score per class" in text
    assert "x1, y1, x2, y2 per query in model-input pixels" in text
