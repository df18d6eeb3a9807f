"""Browser tests of the reference frontend (a package: tests/aws has a test_frontend.py too)."""
