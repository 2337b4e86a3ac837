"""API Gateway entry points: parse the event, call the service, shape the reply. Nothing else."""
