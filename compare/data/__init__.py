"""The data both implementations learn from, loaded once into tensors.

mnist.py: MNIST and Fashion-MNIST from their IDX files, normalized, with `--data-root` and $MNIST_DATA_ROOT;
toy.py: the two-dimensional toy datasets of the playground; digits.py: a drawing or a photo made into an
MNIST input the way MNIST's own digits were made.
"""
