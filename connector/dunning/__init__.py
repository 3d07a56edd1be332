"""Dunning: who is reminded of what, when, and through which system.

`policy` decides (pure: cases in, reminders and skips out); `run` builds the cases from the
store and queues each reminder's actions; `states` copies the collections states the providers
hold; `collections` records the ones finance sets by hand.
"""
