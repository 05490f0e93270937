"""The web UI: a page to start, watch and steer runs, served by the parent."""
