"""The analysis: one typed trial table in, typed results out; imports no storage, Optuna or torch."""
