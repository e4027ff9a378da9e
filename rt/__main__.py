from rt.cli import main

raise SystemExit(main())
