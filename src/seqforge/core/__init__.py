"""The ground floor, standard library only: where stages read and write, durations, registries that fill
themselves, and the module paths that moved."""
