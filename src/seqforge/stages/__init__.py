"""The pipeline's stages, one module each, in the order dvc.yaml runs them."""
