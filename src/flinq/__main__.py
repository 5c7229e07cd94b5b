"""``python -m flinq``: the flinq command line."""

from flinq.cli import main

raise SystemExit(main())
