"""Conversations: channels (web chat, WeChat, voice), the Rasa client, custom actions, the IVR.

Not built yet (issues #3 and #7). It will answer through ``knowledge_base.service.KnowledgeBase``.
"""
