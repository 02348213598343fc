"""Helpers the test harness and the bench scripts share (no tests here)."""
