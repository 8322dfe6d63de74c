"""Neural network layers (filled in below)."""
