"""Model backends behind small interfaces: cover generators (transcribers) and the compute device."""
