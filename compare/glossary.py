"""The lesson's words: each English term of this code beside the Portuguese one the lesson used, and where the
code does it, so a reader of the lesson finds its words here (the README's glossary explains each).

    >>> from compare.glossary import GLOSSARY
    >>> [t for t in GLOSSARY if t.portuguese == "retropropagação"]
    [Term(english='backpropagation', portuguese='retropropagação', where=('scratch/module.py', 'scratch/engine.py'))]

tests/test_glossary.py checks that every term, in both languages, is in the README's glossary, and that
every file named here exists.
"""

from __future__ import annotations

from typing import NamedTuple


class Term(NamedTuple):
    english: str  # the word used in this code and its documents
    portuguese: str  # the lesson's word
    where: tuple[str, ...]  # files that do it, from the repository root


GLOSSARY: tuple[Term, ...] = (
    Term("neuron", "neurônio", ("scratch/linear.py",)),  # one row of Linear.weight
    Term("weights", "pesos", ("scratch/linear.py",)),
    Term("bias", "viés", ("scratch/linear.py",)),
    Term("activation function", "função de ativação", ("scratch/activations.py",)),
    Term("input layer", "camada de entrada", ("scratch/mlp.py",)),
    Term("hidden layer", "camada oculta", ("scratch/mlp.py",)),
    Term("output layer", "camada de saída", ("scratch/mlp.py",)),
    Term("fully connected layer", "camadas totalmente conectadas", ("scratch/linear.py",)),
    Term("propagation", "propagação", ("scratch/module.py",)),  # every forward
    Term("backpropagation", "retropropagação", ("scratch/module.py", "scratch/engine.py")),
    Term("loss function", "função de perda", ("scratch/losses.py",)),
    Term("optimization", "otimização", ("scratch/optim.py",)),
    Term("learning rate", "taxa de aprendizado", ("scratch/optim.py", "scratch/lr_scheduler.py")),
    Term("batch size", "tamanho do lote", ("compare/training/loop.py",)),
    Term("epochs", "épocas", ("compare/training/loop.py",)),
    Term("convergence", "convergência", ("compare/training/loop.py",)),
    Term("regularization", "regularização", ("scratch/regularization.py", "scratch/dropout.py", "scratch/optim.py")),
    Term("normalization", "normalização", ("compare/data/mnist.py", "scratch/batchnorm.py")),
    Term("metrics", "métricas", ("compare/training/metrics.py",)),
    Term("accuracy", "acurácia", ("compare/training/metrics.py",)),
    Term("precision", "precisão", ("compare/training/metrics.py",)),
    Term("sensitivity", "sensibilidade", ("compare/training/metrics.py",)),  # also called recall
    Term("input shape", "formato da entrada", ("compare/models/family.py", "compare/training/learners.py")),
)
