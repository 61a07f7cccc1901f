"""The composition root: configuration, logging, the supervision tree and the web app, wired."""
