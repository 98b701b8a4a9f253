"""Strict black-box unlearning: a prompt suffix found from the model's answers alone
(``feedback.py``: the access a search has; ``search.py``: the searches)."""

from .feedback import BlackBox, BudgetSpent, Feedback, FeedbackItem, Query, Score, fact_questions, suffixed
from .search import SEARCHES, Search

__all__ = ["BlackBox", "BudgetSpent", "Feedback", "FeedbackItem", "Query", "SEARCHES", "Score", "Search",
           "fact_questions", "suffixed"]
