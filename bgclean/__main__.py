from bgclean.cli import main

raise SystemExit(main())
