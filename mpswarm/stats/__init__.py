"""What is recorded: shared-memory counters and histograms, and their aggregation."""
