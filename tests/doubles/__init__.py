"""Test doubles: stand-ins for services that cannot run on these machines (named as doubles)."""
