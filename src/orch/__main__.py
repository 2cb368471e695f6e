from orch.entry import main

raise SystemExit(main())
