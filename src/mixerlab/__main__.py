from mixerlab.cli import main

raise SystemExit(main())
