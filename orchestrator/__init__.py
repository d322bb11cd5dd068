"""Chorus package orchestrator."""
