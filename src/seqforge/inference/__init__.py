"""Inference: beam search and sampling, the predictors (PyTorch, CTranslate2), attention maps, and a model
measured on a split of its task."""
