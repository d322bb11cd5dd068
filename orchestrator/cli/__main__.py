"""`python -m orchestrator.cli` runs the `chorus` command."""

import sys

from orchestrator.cli.main import main

sys.exit(main())
