"""One module per `bert-tf` subcommand: `register(subparsers)` adds the parser and its `run`."""
