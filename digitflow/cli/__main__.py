"""`python -m digitflow.cli`."""

from digitflow.cli import main

raise SystemExit(main())
