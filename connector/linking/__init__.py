"""Linking: the same customer, invoice and payment across systems become one record.

`rules` decides (pure: views in, links out); `run` reads the stored views, applies the links
and audit-logs each merge.
"""
