"""The environment variable that injects a fault into a Ray Train worker (`faults`), apart from its Lightning
callback: a driver forwards it to the workers (`training.budget.cluster.ray_runtime_env`) without importing
Lightning."""

VARIABLE = "SEQFORGE_KILL_WORKER"
