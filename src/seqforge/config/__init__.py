"""Configuration: the strict base model, profiles, the sections tasks and experiments share, and the pipeline
index. Experiments, which need the registered model families, are `seqforge.experiments`."""
