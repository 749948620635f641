"""The bench's one app: orders, shipped by the tasks of ``bench.callback_project.tasks``."""
