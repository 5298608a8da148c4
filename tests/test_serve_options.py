"""How many replicas `seqforge serve --engine ray` asks Ray Serve for: a fixed count, or autoscaling bounds, in
options Serve itself accepts."""

from __future__ import annotations

import pytest

from seqforge.config.shared import ServeCfg

serve_app = pytest.importorskip("seqforge.serving.ray_app")


def test_fixed_replicas_or_autoscaling_bounds_are_options_serve_accepts() -> None:
    fixed = serve_app.ScoringReplica.options(**serve_app.replica_count(ServeCfg(replicas=3)))
    assert fixed.num_replicas == 3
    bounded = ServeCfg(replicas=1, max_replicas=4, max_batch_size=16)
    scaled = serve_app.ScoringReplica.options(**serve_app.replica_count(bounded))
    bounds = scaled._deployment_config.autoscaling_config
    assert (bounds.min_replicas, bounds.max_replicas, bounds.target_ongoing_requests) == (1, 4, 16)
