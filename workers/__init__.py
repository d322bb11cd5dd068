"""Chorus package workers."""
