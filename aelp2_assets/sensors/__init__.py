"""What starts runs: the refresh schedule (alert sensors will live here too)."""
