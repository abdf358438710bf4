"""The commands of `python -m compare`: one module (or package) each, over the core of compare/."""
