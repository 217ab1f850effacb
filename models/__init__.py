"""Model definitions, pruning and loading."""
