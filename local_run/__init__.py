"""The local run: the deployed service on one machine."""
