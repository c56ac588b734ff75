"""Readers of the on-disk detection formats, one module each; ``sources`` picks one."""
