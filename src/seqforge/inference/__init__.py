"""Inference: beam search and sampling, the predictor, attention maps."""
