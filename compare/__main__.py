"""`python -m compare ...`: see compare/cli.py.

Ctrl-C at any moment is one line on stderr and exit status 130, never a traceback. The first
seconds go to importing torch, before compare/cli.py can catch anything: that import is guarded
here (and compare/__init__.py imports nothing heavy, so that it happens here).
"""

import sys

EXIT_INTERRUPTED = 130  # compare/cli.py's, which cannot be imported yet to say so

try:
    from compare.cli import main
except KeyboardInterrupt:
    print("stopped: interrupted (Ctrl-C) while starting (importing torch); nothing was run", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)

try:
    status = main()
except KeyboardInterrupt:  # main says where a Ctrl-C came itself; this one came as it finished
    print("stopped: interrupted (Ctrl-C)", file=sys.stderr)
    status = EXIT_INTERRUPTED
sys.exit(status)
