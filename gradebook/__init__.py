"""Gradebook destinations (issue 21): results written into a OneRoster 1.2 gradebook or sent as
Caliper 1.2 events, with the crosswalk from vendor candidates to the institution's students.

`config` (what a destination is), `scales` (vendor result -> score), `crosswalk` (candidate ->
student, pure) and `crosswalk_db` (its tables, the holds), `delivering` (its part in a delivery
attempt), `oneroster` and `caliper` (the records), `plan` (event -> what to write, pure), `oauth` and
`send` (the HTTP calls, answered as an Outcome).
See docs/destinations.md.
"""
