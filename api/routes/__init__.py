"""Chorus package api/routes."""
