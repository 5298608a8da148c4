"""Training: the Ray Train driver, the Lightning module, checkpoints, diagnostics and progress."""
