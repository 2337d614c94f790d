"""The arq worker: routing, sends and the reconciler. Jobs are thin: they call the core."""
