"""Stage `publish`: push students and the trace dataset to the Hugging Face Hub (stage.py), through one
Hub client with retries and redaction (hub.py), with model and dataset cards (cards.py)."""
