"""Ingress: the HTTP routes the gateway serves."""
