"""Training on Ray Train, split by where the code runs: `worker/` (in each Ray Train worker: Lightning),
`controller/` (callbacks in the run's controller: nothing heavy), `budget/` (the plan, made in the driver
before the run) and, here, the driver's side (the Ray run, the weights it exports, what it records)."""
