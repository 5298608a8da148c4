"""The team stack on one machine (`seqforge stack up|env|down`): its configuration and its services."""
