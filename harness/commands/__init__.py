"""One module per `medbench` subcommand (see medbench.harness.cli)."""
