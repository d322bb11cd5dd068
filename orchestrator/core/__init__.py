"""Chorus package orchestrator/core."""
