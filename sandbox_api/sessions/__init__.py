"""Persistent shell sessions: named shells that keep cwd, variables and functions between commands."""
