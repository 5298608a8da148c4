"""Configuration: the strict base model, shared sections, experiments and the pipeline index."""
