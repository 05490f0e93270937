"""HTTP clients used by users."""
