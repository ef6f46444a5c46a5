"""Delivering normalized events to subscribers' endpoints as signed webhooks (Standard Webhooks).

Two consumers per worker: fan-out (results exchange -> one task per matching subscription) and
attempts (task -> signed POST -> retry tier, failure or success). See docs/subscribers.md.
"""
