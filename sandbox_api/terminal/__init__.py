"""The web terminal: pty sessions and the page that shows them."""
