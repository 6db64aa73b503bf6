"""banshi (办事): composition root — settings, database, auth, errors, health, app factory, CLI.

The service parts (knowledge_base, assistant, kiosk, ticket_bridge) each own their models,
services, router and CLI commands; this package only wires them together.
"""
