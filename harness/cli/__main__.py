"""`python -m medbench.harness.cli` runs the medbench command line."""

import sys

from medbench.harness.cli import main

sys.exit(main())
