"""Filled by a later issue; the app exists and is wired (see DESIGN.md)."""
