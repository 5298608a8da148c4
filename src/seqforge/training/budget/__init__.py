"""A training run's budget, made in the driver before the run starts: the plan of updates and evaluations,
and how fast this machine trains (its measured rate)."""
