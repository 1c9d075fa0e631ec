"""Feedback store: every gateway interaction and the user's rating/correction of it."""
