"""MLflow: tracking client, metric outbox, the registered pyfunc and version lifecycle."""
