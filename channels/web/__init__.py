"""The web chat channel: a JSON API for the site's chat widget and a WebSocket for replies."""
