"""The updater service: applies recommendations without restarts (in-place resize, DRA claim
swaps), falls back to a controlled recreate, and sizes new pods through its admission webhook."""
