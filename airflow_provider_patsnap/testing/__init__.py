"""Test utilities for the PatSnap provider (a local emulator of the PatSnap API)."""
