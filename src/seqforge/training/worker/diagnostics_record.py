"""What the gradient diagnostics (`gradients.TrainingDiagnostics`) leave in a checkpoint, readable by a driver
without importing Lightning: the callback's state key and the bins of its gradient-norm histogram."""

NORM_EDGES = [10 ** (k / 4) for k in range(-12, 17)]  # histogram bins: 1e-3 .. 1e4, four per decade
STATE_KEY = "TrainingDiagnostics"  # Lightning's default key (the class name), kept for earlier checkpoints
