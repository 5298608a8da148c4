"""MLflow: the tracking client, the metric outbox and rank 0's logger, the pyfunc every version is, model versions
(registered, listed, promoted)."""
