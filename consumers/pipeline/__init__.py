"""The message path shared by the worker, replay, the demo and the bench: admit -> judge -> records."""
