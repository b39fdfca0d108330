"""ComputeService: one compute agent (nova-compute)."""
