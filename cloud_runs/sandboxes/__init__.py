"""Sandboxes: one interface (:mod:`.base`), one module per provider."""
