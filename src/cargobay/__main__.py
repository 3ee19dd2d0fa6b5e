"""`python -m cargobay` is the `cargobay` command."""

from cargobay.cli import main

raise SystemExit(main())
