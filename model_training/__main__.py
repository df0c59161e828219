from model_training.cli import main

raise SystemExit(main())
