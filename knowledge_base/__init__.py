"""Knowledge base (知识库): service guides, FAQs and policies; jieba BM25 + dense vectors in
FAISS; calibrated answers that say so when they do not know.

Entry point: :class:`knowledge_base.service.KnowledgeBase`.
"""
