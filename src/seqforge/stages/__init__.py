"""The pipeline's stages, one module each, in the order dvc.yaml runs them: the top of the library, called by
`pipelines/` (DVC's entry points) and by tests; nothing below imports them."""
