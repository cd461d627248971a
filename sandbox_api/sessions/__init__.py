"""Persistent shell sessions: named shells that keep cwd, variables and functions between commands."""

# Under the state directory: the sessions' files. It exists only while sessions do (a clean
# shutdown removes it): found at start, it is what a killed daemon left behind.
DIRECTORY = "sessions"
