"""Workstation side: datasets, synthetic benchmark, models and training (needs the ``train`` extra)."""
