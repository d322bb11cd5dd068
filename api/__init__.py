"""Chorus package api."""
