"""Declared stages: each module declares one stage (name, typed Config, artifact roles in and
out, run); the CLI binds to it and the pipeline loops over ``edgetl.stages.registry.STAGES``."""
