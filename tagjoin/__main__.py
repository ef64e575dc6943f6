"""`python -m tagjoin`: the same command line as the `tagjoin` script."""

from tagjoin.core.cli import main

raise SystemExit(main())
