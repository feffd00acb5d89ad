"""Pieces shared by the `streamapp bench ...` commands."""
