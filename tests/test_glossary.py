"""The lesson's glossary: every term is explained in the README and findable in the code that does it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TERMS = ["neuron", "weights", "bias", "activation function", "input layer", "hidden layer", "output layer",
         "propagation", "backpropagation", "learning rate", "accuracy", "precision", "sensitivity", "recall",
         "convergence", "regularization", "normalization", "fully connected", "loss function", "optimization",
         "metrics", "batch size", "epoch"]


def source_text() -> str:
    files = [p for d in ("scratch", "torch_impl", "compare") for p in (ROOT / d).glob("*.py")]
    return "\n".join(p.read_text() for p in files).lower()


@pytest.mark.parametrize("term", TERMS)
def test_term_is_in_the_code(term):
    assert re.search(r"\b" + re.escape(term), source_text()), f"no source file mentions {term!r}"


@pytest.mark.parametrize("term", TERMS)
def test_term_is_in_the_readme_glossary(term):
    glossary = (ROOT / "README.md").read_text().lower().split("## glossary", 1)[1]
    assert term in glossary, f"the README's glossary does not explain {term!r}"
