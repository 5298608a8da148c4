"""Research: Ray Tune sweeps and the classic-claims study."""
