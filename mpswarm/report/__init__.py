"""Reporters: functions that read a Snapshot and write it somewhere."""
