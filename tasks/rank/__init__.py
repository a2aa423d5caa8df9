"""Ranking: which candidate wins (Qmax cover similarity, its alignment, the defects a listener hears at once)."""
