"""The lesson's glossary: every term is explained in the README and findable in the code that does it, in English
and in the lesson's Portuguese (compare/glossary.py pairs them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compare.glossary import GLOSSARY

ROOT = Path(__file__).resolve().parent.parent
TERMS = ["neuron", "weights", "bias", "activation function", "input layer", "hidden layer", "output layer",
         "propagation", "backpropagation", "learning rate", "accuracy", "precision", "sensitivity", "recall",
         "convergence", "regularization", "normalization", "fully connected", "loss function", "optimization",
         "metrics", "batch size", "epoch", "input shape"]


def source_text() -> str:
    files = [p for d in ("scratch", "torch_impl", "compare") for p in (ROOT / d).rglob("*.py")]
    return "\n".join(p.read_text() for p in files).lower()


@pytest.mark.parametrize("term", TERMS)
def test_term_is_in_the_code(term):
    assert re.search(r"\b" + re.escape(term), source_text()), f"no source file mentions {term!r}"


@pytest.mark.parametrize("term", TERMS)
def test_term_is_in_the_readme_glossary(term):
    glossary = (ROOT / "README.md").read_text().lower().split("## glossary", 1)[1]
    assert term in glossary, f"the README's glossary does not explain {term!r}"


def glossary_section() -> str:
    return (ROOT / "README.md").read_text().lower().split("## glossary", 1)[1]


@pytest.mark.parametrize("term", GLOSSARY, ids=[t.english for t in GLOSSARY])
def test_portuguese_term_is_in_the_code_and_beside_the_english_one_in_the_readme(term):
    assert re.search(r"\b" + re.escape(term.portuguese), source_text()), f"no source file says {term.portuguese!r}"
    rows = [row for row in glossary_section().splitlines() if row.startswith(f"| {term.english}")]
    assert rows and term.portuguese in rows[0], f"the README's glossary row of {term.english!r} lacks " \
                                                f"{term.portuguese!r}"
    for path in term.where:
        assert (ROOT / path).is_file(), f"{term.english}: {path} does not exist"


def test_every_english_term_has_its_portuguese_word():
    english = {t.english for t in GLOSSARY}
    missing = [term for term in TERMS if term != "recall" and not any(e.startswith(term) for e in english)]
    assert not missing, f"no Portuguese word for {missing} in compare/glossary.py"
