"""Plumbing shared by the four services: casts, server bootstrap, errors, conversions."""
