"""Remote targets: run edgetl on a board over the user's own OpenSSH client (see deploy/README.md)."""
