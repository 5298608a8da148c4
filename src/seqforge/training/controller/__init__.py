"""Ray Train callbacks that run in a run's controller. The controller imports the module of every callback
before the workers start, so these import no torch, Lightning or MLflow (`tests/test_layout.py`)."""
