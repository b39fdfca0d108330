"""ConductorService: orchestrates builds and deletes, owns instance persistence."""
