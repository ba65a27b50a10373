"""Local, Twilio-compatible and SMTP servers: the demo runs against them and so do the tests.

They are faithful enough that the real twilio SDK and smtplib cannot tell them from the real
services, and they can inject the faults real providers produce (see the module docstrings).
"""
