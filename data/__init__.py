"""Dataset helpers: the built-in dataset generator, hyperparameters and download scripts."""
