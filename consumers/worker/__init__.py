"""The scoring worker: poll -> micro-batch -> pipeline (torch thread) -> produce -> checkpoint."""
