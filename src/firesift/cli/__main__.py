from firesift.cli import main

raise SystemExit(main())
