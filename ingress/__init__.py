"""The vendor-facing ingress: authenticate each webhook for its source, enqueue it raw, answer.

It decodes nothing beyond what authentication needs and never touches the database.
"""
