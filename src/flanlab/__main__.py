from flanlab.cli import main

raise SystemExit(main())
