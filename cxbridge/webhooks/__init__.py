"""The webhook receiver: verify, dedupe, persist, acknowledge."""
