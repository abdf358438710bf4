"""Pictures of a comparison run, written as PNG files: `--plots DIR` on `train`, `grads` and `playground`.

    python -m compare train --epochs 2 --plots pictures/      # curves, first-layer weights, confusion, mistakes
    python -m compare grads --plots pictures/                 # gradient errors per parameter, with tolerances
    python -m compare playground --plots pictures/ --gif      # decision boundaries, neurons, an animation
    python -m compare train --model cnn --epochs 1 --plots pictures/   # and the filters, the feature maps

One module per subject: canvas.py (what every picture shares: matplotlib imported on demand, sizes,
styles, writing the PNG), curves.py (training curves), weights.py (weights as images), predictions.py
(confusion matrices, mistakes), train.py (the set `train --plots` draws), families.py (what a family's
network does with one digit: attention, recurrent state, feature maps), health.py (is training healthy),
gradients.py (`grads`), playground.py (the playground's plane) and graph.py (the autograd engine's
computation graph, as text and Graphviz DOT). Nothing here imports compare.models, so a family file may
draw with these.
"""
