"""Sweeps: a Hydra multirun as one MLflow parent run (the Hydra callback), Optuna searches, and the
comparison of runs and sweeps."""
