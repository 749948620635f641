"""The project's app: an ``Order`` model, a callback task and an ``@subscribe`` handler."""
