"""Scheduled reports: read commands that run on a clock, as their creator, once per slot."""
