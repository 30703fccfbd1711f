"""Route groups of the web app, one module each."""
