"""Ticket bridge: 12345-style tickets (受理号, lifecycle, SLA in working hours, 回访), the live
hand-off of chats to agents, the agent inbox, and webhooks to outside systems."""
