"""What runs in each Ray Train worker: the Lightning module, its callbacks (checkpoints reported to Ray,
gradient diagnostics, the time budget, in-epoch progress, injected faults) and the loop that wires them."""
