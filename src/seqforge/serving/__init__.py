"""Serving registered versions on a Ray cluster: Ray Serve with MLflow's scoring contract and dynamic batching."""
