"""Relaying responses from the upstream to the client."""
