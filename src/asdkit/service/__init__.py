"""Monitoring in production: the HTTP scoring service and the folder watcher (no Lightning on this path)."""
