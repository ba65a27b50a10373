"""The HTTP service: health, Twilio webhooks, unsubscribe links, the JSON API and the console.

A thin layer: each router parses and checks the request, then calls the same use cases the CLI
calls. The domain knows nothing of FastAPI; nothing here opens a database session.
"""
