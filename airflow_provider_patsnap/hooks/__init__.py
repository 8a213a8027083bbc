"""hooks of the PatSnap provider."""
