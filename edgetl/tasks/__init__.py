"""Tasks: what a model predicts. Each ``edgetl/tasks/<name>/`` package declares one ``TASK``
(a ``TaskSpec``); stages, runners and reports ask the artifact's task instead of assuming one."""
