"""The leaves of compare: modules that import nothing of the project, so that every layer may import them.

errors.py: the errors a person sees (one line each, an exit status); argtypes.py: the argument types of the
command line; agreement.py: the one comparison helper and its named tolerances; report.py: terminal tables and
the JSON report. Beside this folder, compare/glossary.py (the lesson's words and where the code does them) is a
leaf too.
"""
