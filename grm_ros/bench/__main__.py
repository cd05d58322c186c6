from grm_ros.bench.cli import main

raise SystemExit(main())
