"""What a command of `python -m compare` is made of, below the commands and above the core.

command.py: the Command record (name, help, option groups, its own options, `run`) that compare/cli.py
builds the parser from; groups.py: the option groups the commands share (data, model, loss, batch,
epochs, optimizer, seed, precision, device, report, pictures), each adding its options and checking
them, and the Config a parsed command line makes. Parsing only: what the settings become is the core's.
"""
