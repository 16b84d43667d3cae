"""avrnn's sweeper (a Hydra plugin must live in the hydra_plugins namespace): see optuna_sweeper."""
