"""Experiments (`conf/experiments/<name>.yaml`): a task, a model of a registered family, optimiser and training
settings; and the recipes that size a new task's experiments to its corpus."""
