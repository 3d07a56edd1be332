"""Write-back: what each system needs to hear, queued once and sent once.

`plan` decides (pure: facts in, planned actions out); `facts` gathers those facts from the
store; `apply` queues the planned writes in the outbox and sends each exactly once.
"""
