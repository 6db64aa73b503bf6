"""Escalation to people: tickets, live hand-off, agent inbox (issue #4). Not built yet.

Staff accounts and roles already live in ``banshi.auth``.
"""
