"""Tests of capture, the IR, the reference interpreter, and am.export / am.load."""
