"""Reading and writing models: checkpoints (restricted unpickling), scores files, and ultralytics interop."""
