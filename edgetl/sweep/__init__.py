"""Hyper-parameter search of transfer learning on Optuna: space, storage, trials, results."""
