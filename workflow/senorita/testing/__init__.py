"""Stand-ins for outside services, for tests and for trying the pipeline offline."""
